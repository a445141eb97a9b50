// smsflow console: progressive enhancement only; every form works without it.
// A form marked data-confirm asks before it is sent (destructive actions); a
// submit button marked data-confirm asks only when the form's "op" select
// has the value of its data-confirm-op (the sources table's bulk delete).
document.addEventListener("submit", function (ev) {
  var f = ev.target;
  if (!(f instanceof HTMLFormElement)) {
    return;
  }
  var msg = f.dataset.confirm;
  var b = ev.submitter;
  if (!msg && b && b.dataset.confirm) {
    var op = f.elements.namedItem("op");
    if (!b.dataset.confirmOp || (op && op.value === b.dataset.confirmOp)) {
      msg = b.dataset.confirm;
    }
  }
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
}, true);

// A checkbox marked data-select-all="name" checks every box of that name in
// its form.
document.addEventListener("change", function (ev) {
  var all = ev.target;
  if (!(all instanceof HTMLInputElement) || !all.dataset.selectAll || !all.form) {
    return;
  }
  all.form.querySelectorAll('input[type=checkbox][name="' + all.dataset.selectAll + '"]').forEach(function (box) {
    box.checked = all.checked;
  });
});
