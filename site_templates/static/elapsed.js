// Shows how long each running job has been going; the page itself carries the
// start time, so without JavaScript nothing is lost.
"use strict";
(function () {
  const cells = document.querySelectorAll("td.elapsed[data-since]");
  function format(seconds) {
    const m = Math.floor(seconds / 60), s = seconds % 60;
    return m ? `${m} min ${String(s).padStart(2, "0")} s` : `${s} s`;
  }
  function tick() {
    const now = Math.floor(Date.now() / 1000);
    for (const cell of cells) {
      cell.textContent = format(Math.max(0, now - Number(cell.dataset.since)));
    }
  }
  if (cells.length) {
    tick();
    setInterval(tick, 1000);
  }
})();
