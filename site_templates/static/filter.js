// Grid filter for branch pages. Without JavaScript the form stays hidden and
// every row shows; with it, rows that do not match get the `hidden` attribute.
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
  const rows = Array.from(grid.tBodies[0].rows);
  function apply() {
    const needle = name.value.trim().toLowerCase();
    let shown = 0;
    for (const row of rows) {
      const ok =
        (!needle || row.dataset.name.toLowerCase().includes(needle)) &&
        (!state.value || row.dataset.states.split(" ").includes(state.value)) &&
        (!arch.value || row.dataset.arches.split(" ").includes(arch.value)) &&
        (!problems.checked || row.classList.contains("problem"));
      row.hidden = !ok;
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
