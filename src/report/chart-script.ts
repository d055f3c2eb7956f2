/**
 * The page's own script (a string: it runs in the browser, inlined and
 * allowed by its hash). Reads the chart data, draws one uPlot chart per
 * site, and leaves the instances on window.mapleakCharts for tests.
 */
export const chartScript = `(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('mapleak-data').textContent);
  var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  function bytes(v) {
    if (v == null) return '--';
    var n = Math.abs(v), i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (v < 0 ? '-' : '') + (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + ' ' + units[i];
  }
  // Tick steps of 2^n bytes, so the axis reads 4 MiB, 8 MiB... rather than 9.5 MiB.
  var binaryIncrs = [];
  for (var e = 0; e < 50; e++) binaryIncrs.push(Math.pow(2, e));
  var colors = { map: '#d1343a', other: '#4f6d9a' };
  var charts = [];
  data.charts.forEach(function (chart) {
    var el = document.getElementById(chart.id);
    if (!el) return;
    // One x axis for the site: the union of its series' capture times.
    var times = [];
    chart.series.forEach(function (s) { s.points.forEach(function (p) { if (times.indexOf(p[0]) < 0) times.push(p[0]); }); });
    times.sort(function (a, b) { return a - b; });
    var columns = [times];
    chart.series.forEach(function (s) {
      var byTime = {};
      s.points.forEach(function (p) { byTime[p[0]] = p[1]; });
      columns.push(times.map(function (t) { return t in byTime ? byTime[t] : null; }));
    });
    var opts = {
      width: Math.max(320, el.clientWidth || 640),
      height: 220,
      series: [{ label: 'time (UTC)', value: function (u, v) { return v == null ? '--' : new Date(v * 1000).toISOString().slice(11, 19); } }].concat(chart.series.map(function (s, i) {
        return { label: s.label, stroke: colors[s.kind] || '#555', width: 2, dash: i > 0 && s.kind === chart.series[0].kind ? [6, 4] : undefined,
                 points: { show: true, size: 5 }, value: function (u, v) { return bytes(v); } };
      })),
      axes: [{}, { size: 80, incrs: binaryIncrs, values: function (u, vals) { return vals.map(bytes); } }],
      scales: { y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } }
    };
    charts.push(new uPlot(opts, columns, el));
  });
  window.mapleakCharts = charts;
})();
`;
