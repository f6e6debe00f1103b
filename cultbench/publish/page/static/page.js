(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("leaderboard-data").textContent);
  var tables = Array.prototype.slice.call(document.querySelectorAll("table.sortable"));
  function value(row, k, numeric) {
    var v = row.cells[k].getAttribute("data-v");
    return numeric ? (v === "" ? NaN : parseFloat(v)) : v.toLowerCase();
  }
  function sortBy(table, k, descending) {
    var body = table.tBodies[0], heads = table.tHead.rows[0].cells;
    var numeric = heads[k].getAttribute("data-type") === "num";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, k, numeric), y = value(b, k, numeric);
      if (!numeric) { return descending ? y.localeCompare(x) : x.localeCompare(y); }
      if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
      return descending ? y - x : x - y;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var j = 0; j < heads.length; j++) {
      heads[j].setAttribute("aria-sort", j !== k ? "none" : (descending ? "descending" : "ascending"));
    }
  }
  tables.forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (head, k) {
      head.querySelector("button").addEventListener("click", function () {
        sortBy(table, k, head.getAttribute("aria-sort") === "ascending");
      });
    });
  });
  var pick = {target: document.getElementById("filter-target"), aligner: document.getElementById("filter-aligner"),
              split: document.getElementById("filter-split")};
  var results = tables.filter(function (t) { return t.id === "leaderboard" || /-results$/.test(t.id); });
  var total = data.rows.length + (data.distribution || []).reduce(function (n, s) { return n + s.rows.length; }, 0);
  function applyFilters() {
    var shown = 0;
    tables.forEach(function (table) {
      table.setAttribute("data-split", pick.split.value);
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var target = row.getAttribute("data-target");
        row.hidden = Boolean((pick.aligner.value && row.getAttribute("data-aligner") !== pick.aligner.value) ||
                             (pick.target.value && target !== null && target !== pick.target.value));
        if (results.indexOf(table) >= 0 && !row.hidden) { shown += 1; }
      });
    });
    document.getElementById("filter-count").textContent = shown + " of " + total + " results shown" +
      (pick.target.value ? " (the summary is over all targets)" : "");
    document.body.setAttribute("data-visible-rows", String(shown));
  }
  Object.keys(pick).forEach(function (key) { pick[key].addEventListener("change", applyFilters); });
  var params = {};
  window.location.hash.replace(/^#/, "").split("&").forEach(function (part) {
    var kv = part.split("=");
    if (kv.length === 2) { params[kv[0]] = decodeURIComponent(kv[1]); }
  });
  Object.keys(pick).forEach(function (key) {
    if (params[key] !== undefined) {
      Array.prototype.forEach.call(pick[key].options, function (option) {
        if (option.value === params[key] || option.textContent === params[key]) { pick[key].value = option.value; }
      });
    }
  });
  var m = /^([a-z0-9_]+?)(-desc)?$/.exec(params.sort || "");
  tables.forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (head, k) {
      if (m && head.getAttribute("data-col") === m[1]) { sortBy(table, k, Boolean(m[2])); }
    });
  });
  applyFilters();
  document.body.setAttribute("data-json-rows", String(data.rows.length));
  document.body.setAttribute("data-ready", "true");
})();
