// Warns on the front page when the daemon's last full pass is older than it may
// be: the page carries the time (shown without JavaScript too) and the age after
// which the daemon may be down; this compares them with the browser's clock.
"use strict";
(function () {
  const line = document.getElementById("daemon-seen");
  const warning = document.getElementById("daemon-down");
  if (!line || !warning) return;
  const last = Number(line.dataset.lastPass);
  const staleAfter = Number(line.dataset.staleAfter);
  if (!line.dataset.lastPass || !Number.isFinite(last) || !Number.isFinite(staleAfter)) return;
  function check() {
    const stale = Date.now() / 1000 - last > staleAfter;
    warning.hidden = !stale;
    line.classList.toggle("stale", stale);
  }
  check();
  setInterval(check, 30000);
})();
