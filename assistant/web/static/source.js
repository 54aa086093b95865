// Source viewer: bring the cited passage to the middle of the screen (the #passage anchor
// already scrolls it into view; this only centres it).
"use strict";
(function () {
  var passage = document.getElementById("passage");
  if (passage) passage.scrollIntoView({ block: "center" });
})();
