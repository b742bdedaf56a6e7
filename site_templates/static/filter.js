// Grid filter for branch pages. Without JavaScript the form stays hidden and
// every row shows; with it, rows that do not match get the `hidden` attribute.
// The filters match cells, not rows: a state and an arch together show the
// packages whose cell in that arch has that state, and "only problems" with an
// arch those in trouble in that arch. A cell's state is its class (s-<state>),
// its arch the header of its column.
"use strict";
(function () {
  const form = document.getElementById("grid-filter");
  const grid = document.getElementById("grid");
  if (!form || !grid) return;
  const name = document.getElementById("filter-name");
  const state = document.getElementById("filter-state");
  const arch = document.getElementById("filter-arch");
  const problems = document.getElementById("filter-problems");
  const count = document.getElementById("grid-count");
  const PROBLEMS = ["s-failed", "s-broken", "s-retrying"];
  const arches = Array.from(grid.tHead.rows[0].cells).map((th) => th.dataset.arch || "");
  const rows = Array.from(grid.tBodies[0].rows).map((row) => ({
    row,
    name: (row.dataset.name || "").toLowerCase(),
    // [arch, class list] of each cell of the row that is built
    cells: Array.from(row.cells)
      .map((cell, i) => [arches[i], cell.classList])
      .filter(([a, classes]) => a && classes.contains("cell") && !classes.contains("none")),
  }));
  function cellMatches([cellArch, classes]) {
    return (
      (!arch.value || cellArch === arch.value) &&
      (!state.value || classes.contains("s-" + state.value)) &&
      (!problems.checked || PROBLEMS.some((c) => classes.contains(c)))
    );
  }
  function apply() {
    const needle = name.value.trim().toLowerCase();
    const byCell = arch.value || state.value || problems.checked;
    let shown = 0;
    for (const entry of rows) {
      const ok =
        (!needle || entry.name.includes(needle)) && (!byCell || entry.cells.some(cellMatches));
      entry.row.hidden = !ok;
      if (ok) shown += 1;
    }
    count.textContent = String(shown);
  }
  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.addEventListener("submit", (event) => event.preventDefault());
  form.hidden = false;
  apply();
})();
