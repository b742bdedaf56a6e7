// The front page's daemon line. The page carries the time of the daemon's last
// full pass (shown without JavaScript too) and the age after which the daemon
// may be down; this compares them with the browser's clock and warns. The page
// is written only when its content changes, so it cannot carry the time of
// every pass: that one is in metrics.prom, the heartbeat every pass writes,
// which this reads and shows beside it.
"use strict";
(function () {
  const line = document.getElementById("daemon-seen");
  const warning = document.getElementById("daemon-down");
  const lastPass = document.getElementById("last-pass");
  if (!line || !warning) return;
  function showLastPass() {
    if (!lastPass) return;
    fetch("metrics.prom", { cache: "no-store" })
      .then((response) => (response.ok ? response.text() : ""))
      .then((text) => {
        const found = /^reconciler_last_pass_timestamp_seconds\s+([0-9.eE+]+)\s*$/m.exec(text);
        if (!found) return;
        const when = new Date(Number(found[1]) * 1000);
        if (Number.isNaN(when.getTime())) return;
        const iso = when.toISOString().replace(/\.\d+Z$/, "Z");
        const time = lastPass.querySelector("time");
        time.dateTime = iso;
        time.textContent = iso;
        lastPass.hidden = false;
      })
      .catch(() => {});
  }
  showLastPass();
  const last = Number(line.dataset.lastPass);
  const staleAfter = Number(line.dataset.staleAfter);
  if (!line.dataset.lastPass || !Number.isFinite(last) || !Number.isFinite(staleAfter)) return;
  function check() {
    const stale = Date.now() / 1000 - last > staleAfter;
    warning.hidden = !stale;
    line.classList.toggle("stale", stale);
  }
  check();
  setInterval(() => {
    check();
    showLastPass();
  }, 30000);
})();
