// emobox leaderboard page: draws the table, the per-corpus bar charts and the cross-corpus
// heatmaps from the JSON embedded in index.html. Every string from the data goes into the page
// as text (textContent, createTextNode) or as an attribute value, never as markup.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("board-data").textContent);
  var state = { language: "", head: "", sortKey: "rank", sortDir: 1, metric: "accuracy" };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function fixed(x) { return x === null || x === undefined ? "–" : x.toFixed(2); }

  function params(n) {
    if (!n) return "?";
    return n >= 1e5 ? (n / 1e6).toFixed(1) + "M" : String(n);
  }

  function entryHref(row) { return "entry-" + encodeURIComponent(row.id) + ".html"; }

  function rowLabel(row) { return row.name + " (" + row.head + ")"; }

  // -- filters ------------------------------------------------------------------------------

  function fillSelect(id, values) {
    var select = document.getElementById(id);
    values.forEach(function (v) { select.appendChild(el("option", { value: v }, v)); });
    return select;
  }

  function rowShown(row) {
    if (state.head && row.head !== state.head) return false;
    if (state.language) {
      return Object.keys(row.cells).some(function (c) {
        return data.languages[c] === state.language;
      });
    }
    return true;
  }

  function corpusShown(c) { return !state.language || data.languages[c] === state.language; }

  function meanOf(row) { return row.mean[state.language]; }

  // -- the table ----------------------------------------------------------------------------

  var columns = [
    { key: "rank", label: "#", numeric: true, value: function (r) { return r.rank; } },
    { key: "name", label: "Submission", value: function (r) { return r.name; } },
    { key: "head", label: "Head", value: function (r) { return r.head; } },
    { key: "scheme", label: "Folds", value: function (r) { return r.scheme; } },
    { key: "checkpoint", label: "Checkpoint", value: function (r) { return r.checkpoint; } },
    { key: "params", label: "Params", numeric: true,
      value: function (r) { return r.params === null ? null : r.params; } },
    { key: "mean", label: "Mean UA", numeric: true, best: true,
      value: function (r) { return meanOf(r); } }
  ];
  data.corpora.forEach(function (c) {
    columns.push({ key: "corpus:" + c, corpus: c, label: c, numeric: true, best: true,
      value: function (r) { return r.cells[c] ? r.cells[c].ua : null; } });
  });

  function compare(col, dir) {
    return function (a, b) {
      var x = col.value(a), y = col.value(b);
      var xNone = x === null || x === undefined || x === "";
      var yNone = y === null || y === undefined || y === "";
      if (xNone || yNone) {
        if (xNone && yNone) return a.rank - b.rank;
        return xNone ? 1 : -1;  // no value: last, whichever the direction
      }
      var d = col.numeric ? x - y : String(x).localeCompare(String(y));
      return d !== 0 ? d * dir : a.rank - b.rank;
    };
  }

  function meanLabel() {
    var n = data.common[state.language].length;
    return "Mean UA (" + n + (n === 1 ? " corpus" : " corpora") + ")";
  }

  function drawHeader() {
    var thead = document.querySelector("#board thead");
    clear(thead);
    var tr = el("tr");
    columns.forEach(function (col) {
      if (col.corpus && !corpusShown(col.corpus)) return;
      var label = col.key === "mean" ? meanLabel() : col.label;
      var th = el("th", { scope: "col", "data-key": col.key, tabindex: "0",
        title: "sort by " + label });
      th.appendChild(document.createTextNode(label));
      if (col.corpus) {
        th.appendChild(el("span", { class: "lang" }, data.languages[col.corpus]));
      }
      if (state.sortKey === col.key) {
        th.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
      }
      th.addEventListener("click", function () { sortBy(col); });
      th.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortBy(col); }
      });
      tr.appendChild(th);
    });
    thead.appendChild(tr);
  }

  function sortBy(col) {
    if (state.sortKey === col.key) {
      state.sortDir = -state.sortDir;
    } else {
      state.sortKey = col.key;
      state.sortDir = col.best ? -1 : 1;  // scores: best first; names: A to Z
    }
    drawTable();
  }

  function drawTable() {
    drawHeader();
    var col = columns.filter(function (c) { return c.key === state.sortKey; })[0];
    var rows = data.rows.slice().sort(compare(col, state.sortDir));
    var tbody = document.querySelector("#board tbody");
    clear(tbody);
    var shown = 0;
    rows.forEach(function (row) {
      var tr = el("tr", { "data-id": row.id, "data-head": row.head });
      if (row.by_test) tr.classList.add("by-test");
      if (row.contaminated) tr.classList.add("contaminated");
      if (!rowShown(row)) tr.hidden = true; else shown += 1;
      tr.appendChild(el("td", { class: "num" }, row.rank));
      var name = el("td", { class: "name" });
      name.appendChild(el("a", { href: entryHref(row) }, row.name));
      if (row.by_test) name.appendChild(el("span", { class: "mark", title: "selected by test" },
        data.marks.test));
      if (row.contaminated) name.appendChild(el("span", { class: "mark", title: "contaminated" },
        data.marks.contaminated));
      tr.appendChild(name);
      tr.appendChild(el("td", {}, row.head));
      tr.appendChild(el("td", {}, row.scheme));
      tr.appendChild(el("td", { class: "checkpoint", title: row.checkpoint },
        row.checkpoint.length > 24 ? row.checkpoint.slice(0, 24) + "…" : row.checkpoint));
      tr.appendChild(el("td", { class: "num" }, params(row.params)));
      tr.appendChild(el("td", { class: "num mean" }, fixed(meanOf(row))));
      data.corpora.forEach(function (c) {
        if (!corpusShown(c)) return;
        var cell = row.cells[c];
        var td = el("td", { class: "num", "data-corpus": c });
        if (!cell) {
          td.textContent = "–";
        } else {
          td.appendChild(document.createTextNode(fixed(cell.ua)));
          td.appendChild(el("span", { class: "std" }, " ± " + fixed(cell.std)));
          if (cell.marks) td.appendChild(el("span", { class: "mark" }, cell.marks));
        }
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    document.getElementById("shown").textContent =
      shown + " of " + data.rows.length + " rows shown";
  }

  // -- bar charts ---------------------------------------------------------------------------

  function drawCharts() {
    var list = document.getElementById("chart-list");
    clear(list);
    data.corpora.forEach(function (c) {
      if (!corpusShown(c)) return;
      var rows = data.rows.filter(function (r) { return r.cells[c] && rowShown(r); });
      if (!rows.length) return;
      rows.sort(function (a, b) { return b.cells[c].ua - a.cells[c].ua || a.rank - b.rank; });
      var fig = el("figure", { class: "chart", "data-corpus": c });
      fig.appendChild(el("figcaption", {}, c + " (" + data.languages[c] + ")"));
      var barH = 20, gap = 6, labelW = 220, plotW = 300, top = 6, axisH = 22;
      var height = top + rows.length * (barH + gap) + axisH;
      var width = labelW + plotW + 90;
      var chart = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " +
        height, role: "img", "aria-label": "UA per entry on " + c });
      chart.appendChild(svg("title", {}, "UA (%) per entry on " + c));
      [0, 25, 50, 75, 100].forEach(function (t) {
        var x = labelW + plotW * t / 100;
        chart.appendChild(svg("line", { x1: x, x2: x, y1: top, y2: height - axisH,
          class: "grid" }));
        chart.appendChild(svg("text", { x: x, y: height - 6, "text-anchor": "middle",
          class: "tick" }, t));
      });
      rows.forEach(function (r, i) {
        var cell = r.cells[c];
        var y = top + i * (barH + gap);
        var g = svg("g", { class: "bar" + (r.by_test ? " by-test" : "") +
          (r.contaminated ? " contaminated" : "") });
        var label = rowLabel(r);
        g.appendChild(svg("text", { x: labelW - 6, y: y + barH / 2 + 4, "text-anchor": "end",
          class: "label" }, label.length > 34 ? label.slice(0, 33) + "…" : label));
        var w = Math.max(0, Math.min(100, cell.ua)) * plotW / 100;
        var rect = svg("rect", { x: labelW, y: y, width: w, height: barH });
        rect.appendChild(svg("title", {}, label + ": " + fixed(cell.ua) + " ± " +
          fixed(cell.std) + (cell.marks || "")));
        g.appendChild(rect);
        if (cell.std) {
          var lo = Math.max(0, cell.ua - cell.std), hi = Math.min(100, cell.ua + cell.std);
          g.appendChild(svg("line", { x1: labelW + lo * plotW / 100, x2: labelW + hi * plotW / 100,
            y1: y + barH / 2, y2: y + barH / 2, class: "err" }));
        }
        g.appendChild(svg("text", { x: labelW + plotW + 6, y: y + barH / 2 + 4, class: "value" },
          fixed(cell.ua) + (cell.marks || "")));
        chart.appendChild(g);
      });
      fig.appendChild(chart);
      list.appendChild(fig);
    });
    if (!list.firstChild) list.appendChild(el("p", {}, "No result matches the filters."));
  }

  // -- cross-corpus heatmaps ----------------------------------------------------------------

  function heatColor(v) {  // white (0 %) to dark blue (100 %)
    var t = Math.max(0, Math.min(1, v / 100));
    var r = Math.round(247 - t * (247 - 8)), g = Math.round(251 - t * (251 - 69));
    var b = Math.round(255 - t * (255 - 148));
    return "rgb(" + r + "," + g + "," + b + ")";
  }

  function drawCross() {
    var section = document.getElementById("cross");
    var list = document.getElementById("cross-list");
    clear(list);
    section.hidden = data.cross.length === 0;
    data.cross.forEach(function (x) {
      if (state.head && x.head !== state.head) return;
      var metric = x.metrics[state.metric];
      var fig = el("figure", { class: "heatmap" });
      var caption = x.upstream + " × " + x.head + (x.by_test ? " " + data.marks.test : "");
      if (!metric) {
        fig.appendChild(el("figcaption", {}, caption));
        fig.appendChild(el("p", {}, "This matrix has no " + state.metric + "."));
        list.appendChild(fig);
        return;
      }
      caption += ": average " + fixed(metric.average) + " %";
      fig.appendChild(el("figcaption", {}, caption));
      var n = x.corpora.length, cw = 64, ch = 30, left = 130, top = 96;
      var width = left + n * cw + 10, height = top + n * ch + 10;
      var map = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " +
        height, role: "img", "aria-label": caption });
      map.appendChild(svg("text", { x: 4, y: 14, class: "axis" }, "trained on ↓, tested on →"));
      x.corpora.forEach(function (c, j) {
        var tx = left + j * cw + cw / 2, ty = top - 6;
        map.appendChild(svg("text", { x: tx, y: ty, class: "label",
          transform: "rotate(-40 " + tx + " " + ty + ")" }, c.length > 14 ? c.slice(0, 13) + "…" : c));
      });
      x.corpora.forEach(function (source, i) {
        map.appendChild(svg("text", { x: left - 6, y: top + i * ch + ch / 2 + 4,
          "text-anchor": "end", class: "label" }, source.length > 18 ? source.slice(0, 17) + "…" : source));
        x.corpora.forEach(function (target, j) {
          var v = metric.matrix[i][j];
          var g = svg("g", { class: "cell" + (i === j ? " diagonal" : "") });
          var rect = svg("rect", { x: left + j * cw, y: top + i * ch, width: cw - 2,
            height: ch - 2, fill: v === null ? "#eeeeee" : heatColor(v) });
          rect.appendChild(svg("title", {}, "trained on " + source + ", tested on " + target +
            ": " + fixed(v)));
          g.appendChild(rect);
          var mark = x.contaminated[i][j] ? data.marks.contaminated : "";
          g.appendChild(svg("text", { x: left + j * cw + cw / 2 - 1, y: top + i * ch + ch / 2 + 4,
            "text-anchor": "middle", class: v !== null && v > 55 ? "value dark" : "value" },
            (v === null ? "–" : v.toFixed(1)) + mark));
          map.appendChild(g);
        });
      });
      fig.appendChild(map);
      list.appendChild(fig);
    });
    if (data.cross.length && !list.firstChild) {
      list.appendChild(el("p", {}, "No cross-corpus result matches the head filter."));
    }
  }

  function drawAll() {
    drawTable();
    drawCharts();
    drawCross();
  }

  var language = fillSelect("filter-language", data.language_list);
  var head = fillSelect("filter-head", data.heads);
  language.addEventListener("change", function () { state.language = language.value; drawAll(); });
  head.addEventListener("change", function () { state.head = head.value; drawAll(); });
  var metric = document.getElementById("cross-metric");
  metric.addEventListener("change", function () { state.metric = metric.value; drawCross(); });
  drawAll();
}());
