// smsflow console: progressive enhancement only; every form works without it.
// A form marked data-confirm asks before it is sent (destructive actions).
document.addEventListener("submit", function (ev) {
  var f = ev.target;
  if (f instanceof HTMLFormElement && f.dataset.confirm && !window.confirm(f.dataset.confirm)) {
    ev.preventDefault();
  }
}, true);
