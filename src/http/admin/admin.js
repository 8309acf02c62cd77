// apikeyd admin page: the little it needs script for. Served from the binary; no inline
// script anywhere (the page's Content-Security-Policy forbids it).
"use strict";

// Every form with data-confirm asks before it is sent.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// A button with data-copy="ID" copies the text of element ID to the clipboard.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) {
    return;
  }
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) {
    return;
  }
  var text = source.textContent.trim();
  var status = document.getElementById(button.getAttribute("aria-describedby") || "");
  function said(message) {
    if (status) {
      status.textContent = message;
    }
  }
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(
      function () { said("Copied to the clipboard."); },
      function () { selectText(source); said("Selected: press Ctrl+C to copy."); }
    );
  } else {
    selectText(source);
    said("Selected: press Ctrl+C to copy.");
  }
});

function selectText(element) {
  var range = document.createRange();
  range.selectNodeContents(element);
  var selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}
