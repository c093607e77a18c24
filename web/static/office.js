// The only script of the back office (inline scripts are refused by the CSP): a Print button,
// and chart tables opened for printing.
document.querySelectorAll("[data-print]").forEach(function (b) {
  b.addEventListener("click", function () { window.print(); });
});
// A dashboard's chart tables are folded on screen and printed open (office.css does it with
// ::details-content; this does it in browsers without that).
window.addEventListener("beforeprint", function () {
  document.querySelectorAll("details.chart-data:not([open])").forEach(function (d) {
    d.setAttribute("open", ""); d.setAttribute("data-opened-for-print", "");
  });
});
window.addEventListener("afterprint", function () {
  document.querySelectorAll("details[data-opened-for-print]").forEach(function (d) {
    d.removeAttribute("open"); d.removeAttribute("data-opened-for-print");
  });
});
// A form with data-once is sent once: its buttons are disabled as it goes (a double click
// posts one request; the server answers a repeated one the same way anyway).
document.querySelectorAll("form[data-once]").forEach(function (f) {
  f.addEventListener("submit", function (e) {
    if (f.hasAttribute("data-sent")) { e.preventDefault(); return; }
    f.setAttribute("data-sent", "");
    setTimeout(function () {
      f.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    }, 0);
  });
});
// A Copy button: copies the text of the element its data-copy names (an outlet's token,
// shown once). A form with data-confirm asks before it is sent.
document.querySelectorAll("[data-copy]").forEach(function (b) {
  b.addEventListener("click", function () {
    var text = document.getElementById(b.getAttribute("data-copy")).textContent;
    navigator.clipboard.writeText(text).then(function () { b.textContent = "Copied"; });
  });
});
document.querySelectorAll("form[data-confirm]").forEach(function (f) {
  f.addEventListener("submit", function (e) {
    if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
  });
});
