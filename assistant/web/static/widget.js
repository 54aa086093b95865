/*
 * Medical Director Onboarding Assistant: the embeddable chat widget.
 *
 *   <script src="https://HOST/widget.js" data-title="Ask our assistant" data-greeting="Hi!"
 *           data-accent="#0a7" data-position="bottom-right" data-open="false" async></script>
 *
 * Adds a launcher button (in a Shadow DOM, so the page's CSS cannot reach it) that opens a
 * panel holding an iframe of HOST/embed, where the chat runs. Attribute values are data:
 * they are only ever set as text or checked against a pattern, never parsed as HTML.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src || window.__medicalDirectorWidget) return;
  window.__medicalDirectorWidget = true;

  var APP = new URL(script.src, window.location.href).origin;
  var READY_TIMEOUT_MS = 8000;

  function attr(name, fallback, maxLength) {
    var value = script.getAttribute("data-" + name);
    return value === null || value.trim() === "" ? fallback : value.trim().slice(0, maxLength);
  }

  var title = attr("title", "Ask the assistant", 80);
  var greeting = attr("greeting", "Hello! Ask me about the medical director role: training, credentials, the first months.", 400);
  var accentValue = attr("accent", "", 9);
  var accent = /^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$/.test(accentValue) ? accentValue : "#0f766e";
  var position = attr("position", "bottom-right", 20) === "bottom-left" ? "bottom-left" : "bottom-right";
  var startOpen = attr("open", "false", 5).toLowerCase() === "true";

  var CSS = [
    ":host { all: initial; }",
    ".root { position: fixed; bottom: 20px; z-index: 2147483000; font: 15px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; color: #1f2937; }",
    ".root.bottom-right { right: 20px; } .root.bottom-left { left: 20px; }",
    ".launcher { display: flex; align-items: center; gap: 8px; border: 0; border-radius: 999px; padding: 12px 18px; cursor: pointer;",
    "  color: #fff; background: var(--accent); font: 600 15px/1 system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif;",
    "  box-shadow: 0 6px 20px rgba(0,0,0,.22); }",
    ".launcher:focus-visible, .close:focus-visible { outline: 3px solid #111827; outline-offset: 2px; }",
    ".launcher svg { width: 20px; height: 20px; fill: currentColor; }",
    ".panel { position: absolute; bottom: 64px; width: 380px; height: min(600px, calc(100vh - 110px)); display: flex; flex-direction: column;",
    "  background: #fff; border-radius: 14px; overflow: hidden; box-shadow: 0 12px 40px rgba(0,0,0,.28); }",
    ".bottom-right .panel { right: 0; } .bottom-left .panel { left: 0; }",
    ".panel[hidden] { display: none; }",
    ".bar { display: flex; align-items: center; justify-content: space-between; gap: 8px; padding: 10px 12px 10px 16px;",
    "  color: #fff; background: var(--accent); }",
    ".bar h2 { margin: 0; font: 600 16px/1.2 system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }",
    ".close { border: 0; background: transparent; color: inherit; font: 24px/1 system-ui, sans-serif; width: 32px; height: 32px; border-radius: 8px; cursor: pointer; }",
    ".close:hover { background: rgba(255,255,255,.18); }",
    "iframe { flex: 1; width: 100%; border: 0; display: block; background: #fff; }",
    ".fallback { padding: 16px; } .fallback a { color: var(--accent); }",
    "@media (max-width: 600px) {",
    "  .root.open { inset: 0; } .root.open .launcher { display: none; }",
    "  .root.open .panel { position: fixed; inset: 0; width: 100%; height: 100%; border-radius: 0; }",
    "}"
  ].join("\n");

  // A custom element name: the page's `div`, `span`... rules do not match the widget's host.
  var host = document.createElement("medical-director-widget");
  host.setAttribute("data-medical-director-widget", "");
  var shadow = host.attachShadow({ mode: "open" });
  applyStyles(shadow, CSS);

  var root = element("div", "root " + position);
  root.style.setProperty("--accent", accent);
  var launcher = element("button", "launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "mda-panel");
  launcher.setAttribute("aria-label", "Open chat: " + title);
  launcher.appendChild(chatIcon());
  launcher.appendChild(text(title));

  var panel = element("div", "panel");
  panel.id = "mda-panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", title);
  var bar = element("div", "bar");
  var heading = element("h2", "");
  heading.textContent = title;
  var close = element("button", "close");
  close.type = "button";
  close.setAttribute("aria-label", "Close chat");
  close.textContent = "\u00d7";
  bar.appendChild(heading);
  bar.appendChild(close);
  panel.appendChild(bar);
  root.appendChild(panel);
  root.appendChild(launcher);
  shadow.appendChild(root);

  var frame = null;
  var frameReady = false;
  var wantsFocus = false;
  var readyTimer = null;

  function element(tag, className) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function text(value) {
    var span = document.createElement("span");
    span.textContent = value;
    return span;
  }

  function chatIcon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    return svg;
  }

  function applyStyles(target, css) {
    // Constructed style sheets work under a host page's strict style-src; <style> is the fallback.
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      target.adoptedStyleSheets = [sheet];
    } catch (error) {
      var style = document.createElement("style");
      style.textContent = css;
      target.appendChild(style);
    }
  }

  function embedUrl() {
    var params = new URLSearchParams({ embedded: "1", title: title, greeting: greeting, accent: accent });
    return APP + "/embed#" + params.toString();
  }

  function ensureFrame() {
    if (frame) return;
    frame = document.createElement("iframe");
    frame.title = title;
    frame.src = embedUrl();
    frame.setAttribute("allow", "clipboard-write");
    frame.setAttribute("referrerpolicy", "origin");
    panel.appendChild(frame);
    readyTimer = window.setTimeout(showFallback, READY_TIMEOUT_MS);
  }

  function showFallback() {
    // The chat did not load: most often this site is not in ASSISTANT_ALLOWED_ORIGINS.
    if (frameReady || !frame) return;
    var box = element("div", "fallback");
    box.setAttribute("role", "alert");
    box.appendChild(text("The assistant could not be shown on this site. "));
    var link = element("a", "");
    link.href = APP + "/";
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = "Open it in a new tab";
    box.appendChild(link);
    frame.replaceWith(box);
    frame = null;
  }

  function open(moveFocus) {
    ensureFrame();
    panel.hidden = false;
    root.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat: " + title);
    wantsFocus = moveFocus;
    if (moveFocus) focusChat();
  }

  function focusChat() {
    if (frame && frameReady) {
      frame.focus();
      frame.contentWindow.postMessage({ type: "mda-focus" }, APP);
    } else {
      close.focus();
    }
  }

  function hide() {
    panel.hidden = true;
    root.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat: " + title);
    launcher.focus();
  }

  function isOpen() {
    return !panel.hidden;
  }

  launcher.addEventListener("click", function () {
    if (isOpen()) hide();
    else open(true);
  });
  close.addEventListener("click", hide);
  shadow.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && isOpen()) {
      event.stopPropagation();
      hide();
    }
  });
  window.addEventListener("message", function (event) {
    // Only our own iframe, from our own origin, may talk to the widget.
    if (!frame || event.source !== frame.contentWindow || event.origin !== APP) return;
    var data = event.data || {};
    if (data.type === "mda-ready") {
      frameReady = true;
      window.clearTimeout(readyTimer);
      if (isOpen() && wantsFocus) focusChat();
    } else if (data.type === "mda-close") {
      hide();
    }
  });

  function mount() {
    document.body.appendChild(host);
    if (startOpen) open(false); // opened by the page, not the user: leave the focus where it is
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
