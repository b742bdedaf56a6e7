// Grid filter for branch and grid pages, and the name search of a branch's list
// of grid pages. Without JavaScript the forms stay hidden and every row shows;
// with it, rows that do not match get the `hidden` attribute.
// The grid filters match cells, not rows: a state and an arch together show the
// packages whose cell in that arch has that state, and "only problems" with an
// arch those in trouble in that arch. A cell's state is its class (s-<state>),
// its arch the header of its column. A link may set the filters in its fragment
// (page.html#state=failed&arch=x86_64&name=foo&problems=1): the branch page's
// counts lead to a grid page showing the packages in that state.
// The name search of the list of grid pages shows the pages whose range of names
// (data-lowest to data-highest) may hold a name starting with what is typed, and
// carries it to the page it leads to.
"use strict";
(function () {
  const index = document.getElementById("grid-index");
  const indexForm = document.getElementById("index-filter");
  if (index && indexForm) {
    const box = document.getElementById("index-name");
    const shownCount = document.getElementById("index-count");
    const parts = Array.from(index.tBodies[0].rows).map((row) => ({
      row,
      lowest: row.dataset.lowest || "",
      highest: row.dataset.highest || "",
      link: row.querySelector("th a"),
    }));
    const searchIndex = () => {
      const typed = box.value.trim();
      let shown = 0;
      for (const part of parts) {
        const n = typed.length;
        const ok = !typed || (part.lowest.slice(0, n) <= typed && typed <= part.highest.slice(0, n));
        part.row.hidden = !ok;
        if (part.link) {
          part.link.hash = typed ? "name=" + encodeURIComponent(typed) : "";
        }
        if (ok) shown += 1;
      }
      shownCount.textContent = String(shown);
    };
    indexForm.addEventListener("input", searchIndex);
    indexForm.addEventListener("submit", (event) => event.preventDefault());
    indexForm.hidden = false;
    searchIndex();
  }

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
  // Only values the form offers: anything else is "any".
  function choose(select, value) {
    const offered = Array.from(select.options).some((option) => option.value === value);
    select.value = offered ? value : "";
  }
  // The fragment says the whole filter: what it leaves out is not filtered.
  function fromFragment() {
    const wanted = new URLSearchParams(location.hash.slice(1));
    name.value = wanted.get("name") || "";
    choose(state, wanted.get("state") || "");
    choose(arch, wanted.get("arch") || "");
    problems.checked = wanted.get("problems") === "1";
    apply();
  }
  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.addEventListener("submit", (event) => event.preventDefault());
  window.addEventListener("hashchange", fromFragment);
  form.hidden = false;
  fromFragment();
})();
