// Keyboard shortcuts of the review queue: a key pressed outside a form field presses the button or link whose
// data-key it is (1-4: a sentiment, Enter: the model is right, s: skip). Without this script the same controls work
// by Tab and Enter, and through their accesskey.
document.addEventListener("keydown", function (event) {
  if (event.altKey || event.ctrlKey || event.metaKey || event.isComposing) return;
  var target = event.target;
  if (target && target.closest && target.closest("input, select, textarea, button, a")) return;
  var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  // Persian digits and the Persian layout's «س» (the key of s) mean the same keys.
  var persian = { "۱": "1", "۲": "2", "۳": "3", "۴": "4", "س": "s" };
  key = persian[key] || key;
  var control = document.querySelector('[data-key="' + key + '"]');
  if (!control) return;
  event.preventDefault();
  control.click();
});
