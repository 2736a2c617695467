// Small progressive enhancements. Every form works without this file.
(function () {
  "use strict";

  function statusFor(button) {
    var group = button.closest(".reveal");
    return group ? group.querySelector(".copy-status") : null;
  }

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function fallbackCopy(text) {
    selectText(text);
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }

  // "Copy" buttons: data-copy names the element showing the value.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var text = document.querySelector(button.getAttribute("data-copy"));
    if (!text) return;
    var value = text.textContent.trim();
    var status = statusFor(button);
    var done = function (ok) {
      if (status) status.textContent = ok ? "Copied to the clipboard." : "Select the text and copy it with your keyboard.";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(function () { done(true); }, function () { done(fallbackCopy(text)); });
    } else {
      done(fallbackCopy(text));
    }
  });

  // Focusing a value (keyboard or click) selects all of it, ready to copy.
  document.addEventListener("focusin", function (event) {
    if (event.target.classList && event.target.classList.contains("value-text")) selectText(event.target);
  });
})();
