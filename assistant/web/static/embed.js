/*
 * /embed: a small chat page made for the widget's iframe. It streams answers from
 * /api/stream (same origin as this page) and shows citations: [n] links and a collapsible
 * list of sources that open the source viewer in a new tab. All text is set with
 * textContent: nothing from answers, guides or the URL is parsed as HTML.
 */
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.hash.slice(1));
  var embedded = params.get("embedded") === "1" && window.parent !== window;
  var log = document.getElementById("log");
  var form = document.getElementById("form");
  var box = document.getElementById("question");
  var send = document.getElementById("send");
  var history = [];
  var busy = false;
  var MAX_HISTORY = 20;
  var RATE_LIMITED = "You have asked a lot of questions in a short time. Please wait a minute, then ask again.";
  var UNREACHABLE = "The assistant cannot be reached right now. Please check your connection and try again.";

  function setup() {
    var title = params.get("title");
    if (title) {
      document.getElementById("title").textContent = title.slice(0, 80);
      document.title = title.slice(0, 80);
    }
    var greeting = params.get("greeting");
    if (greeting) document.getElementById("greeting").textContent = greeting.slice(0, 400);
    var accent = params.get("accent") || "";
    if (/^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$/.test(accent)) {
      document.documentElement.style.setProperty("--accent", accent);
    }
    if (embedded) {
      document.body.classList.add("embedded");
      window.parent.postMessage({ type: "mda-ready" }, "*"); // carries no data: any parent may hear it
    }
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function addMessage(role, text) {
    var message = element("div", "message " + role);
    if (text !== undefined) message.appendChild(element("p", "", text));
    log.appendChild(message);
    scrollDown();
    return message;
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function sourceUrl(citation) {
    var path = String(citation.source).split("/").map(encodeURIComponent).join("/");
    var snippet = String(citation.snippet || "").slice(0, 2000);
    return "/sources/" + path + (snippet ? "?highlight=" + encodeURIComponent(snippet) + "#passage" : "");
  }

  function appendInline(parent, line, citations) {
    // Text with [n] markers: known markers become links to the cited source, the rest stays text.
    line.replace(/\*\*/g, "").split(/(\[\d{1,3}\])/).forEach(function (part) {
      var match = /^\[(\d{1,3})\]$/.exec(part);
      var citation = match && citations[match[1]];
      if (citation) {
        var link = element("a", "cite", "[" + citation.id + "]");
        link.href = sourceUrl(citation);
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        link.title = [citation.title, citation.section].filter(Boolean).join(" — ");
        parent.appendChild(link);
      } else if (part) {
        parent.appendChild(document.createTextNode(part));
      }
    });
  }

  function renderText(parent, text, citations) {
    // The answers are paragraphs and "- " bullet lists; that is all the Markdown we need.
    var list = null;
    text.split("\n").forEach(function (raw) {
      var line = raw.trim();
      var bullet = /^[-*] +/.exec(line);
      if (!line) {
        list = null;
      } else if (bullet) {
        if (!list) list = parent.appendChild(element("ul", ""));
        appendInline(list.appendChild(element("li", "")), line.slice(bullet[0].length), citations);
      } else {
        list = null;
        appendInline(parent.appendChild(element("p", "")), line, citations);
      }
    });
  }

  function renderAnswer(message, answer) {
    message.textContent = "";
    if (answer.refused) {
      message.classList.add("refused");
      message.setAttribute("data-reason", String(answer.reason || ""));
    }
    var citations = {};
    (answer.citations || []).forEach(function (c) {
      citations[c.id] = c;
    });
    renderText(message, String(answer.answer || ""), citations);
    if (answer.notice) message.appendChild(element("p", "rewritten", String(answer.notice)));
    var rewritten = answer.standalone_question && answer.standalone_question !== answer.question;
    var count = (answer.citations || []).length;
    if (!count && !rewritten) return;
    var details = element("details", "sources");
    details.appendChild(element("summary", "", count ? "Sources (" + count + ")" : "How the question was searched"));
    if (rewritten) {
      details.appendChild(element("p", "rewritten", "Searched for: \u201c" + answer.standalone_question + "\u201d"));
    }
    var list = details.appendChild(element("ul", ""));
    (answer.citations || []).forEach(function (c) {
      var item = list.appendChild(element("li", "source"));
      var link = item.appendChild(element("a", "", "[" + c.id + "] " + (c.title || c.source)));
      link.href = sourceUrl(c);
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      var meta = (c.section ? " — " + c.section : "") + " · score " + Number(c.score).toFixed(2);
      item.appendChild(element("span", "meta", meta));
      item.appendChild(element("blockquote", "", String(c.snippet || "")));
    });
    message.appendChild(details);
  }

  function showProblem(message, className, text) {
    message.textContent = "";
    message.classList.add(className);
    message.setAttribute("role", "alert");
    message.appendChild(element("p", "", text));
  }

  function readLines(response, onLine) {
    // NDJSON: one JSON event per line; streamed when the browser can, else read whole.
    if (!response.body || !window.TextDecoder) {
      return response.text().then(function (all) {
        all.split("\n").forEach(function (line) {
          if (line.trim()) onLine(JSON.parse(line));
        });
      });
    }
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        buffer += decoder.decode(chunk.value || new Uint8Array(), { stream: !chunk.done });
        var lines = buffer.split("\n");
        buffer = chunk.done ? "" : lines.pop();
        lines.forEach(function (line) {
          if (line.trim()) onLine(JSON.parse(line));
        });
        return chunk.done ? undefined : pump();
      });
    }
    return pump();
  }

  function ask(question) {
    busy = true;
    send.disabled = true;
    addMessage("user", question);
    var message = addMessage("assistant");
    var pending = message.appendChild(element("p", "pending", "…"));
    var streamed = "";
    var body = JSON.stringify({ question: question, history: history.slice(-MAX_HISTORY) });
    return fetch("/api/stream", { method: "POST", headers: { "Content-Type": "application/json" }, body: body })
      .then(function (response) {
        if (response.status === 429) return showProblem(message, "rate-limited", RATE_LIMITED);
        if (!response.ok) {
          return response
            .json()
            .catch(function () {
              return {};
            })
            .then(function (problem) {
              showProblem(message, "error", problem.error || "Something went wrong (" + response.status + ").");
            });
        }
        return readLines(response, function (event) {
          if (event.type === "delta") {
            streamed += event.text;
            pending.textContent = streamed;
            pending.className = "streaming";
          } else if (event.type === "answer") {
            renderAnswer(message, event.answer);
            history.push({ role: "user", content: question }, { role: "assistant", content: event.answer.answer });
          } else if (event.type === "error") {
            showProblem(message, "error", event.error);
          }
          scrollDown();
        });
      })
      .catch(function () {
        showProblem(message, "error", UNREACHABLE);
      })
      .then(function () {
        busy = false;
        send.disabled = false;
        scrollDown();
        box.focus();
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var question = box.value.trim();
    if (busy) return;
    if (!question) {
      box.focus();
      return;
    }
    box.value = "";
    ask(question);
  });
  box.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && embedded) window.parent.postMessage({ type: "mda-close" }, "*");
  });
  window.addEventListener("message", function (event) {
    if (event.source === window.parent && event.data && event.data.type === "mda-focus") box.focus();
  });

  setup();
})();
