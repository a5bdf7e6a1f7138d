// The static parts of the HTML report: its stylesheet and the script that renders the event
// table (filter, sort, pages) from the JSON embedded in the page. No network, no libraries.
#pragma once

namespace dltrace::viewer::html_assets {

inline constexpr const char* kStyle = R"CSS(
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 2em 2em; color: #222; }
h1 { font-size: 1.4em; margin: .8em 0 .3em; }
h2 { font-size: 1.15em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
nav a { margin-right: 1.2em; }
table.summary td { padding: .1em 1em .1em 0; vertical-align: top; }
table.summary td:first-child { color: #666; }
.placeholder { color: #777; font-style: italic; }
.note { color: #8a5a00; }
.graph { overflow: auto; max-height: 80vh; border: 1px solid #eee; padding: .5em; }
.graph svg { max-width: none; }
#controls { margin: .5em 0; display: flex; gap: 1em; align-items: center; flex-wrap: wrap; }
#filter { width: 28em; padding: .25em .4em; }
table.events { border-collapse: collapse; width: 100%; font: 12px/1.35 ui-monospace, monospace; }
table.events th { position: sticky; top: 0; background: #f4f4f4; cursor: pointer; text-align: left;
  padding: .3em .5em; border-bottom: 1px solid #ccc; user-select: none; white-space: nowrap; }
table.events th.asc::after { content: " \25B2"; } table.events th.desc::after { content: " \25BC"; }
table.events td { padding: .15em .5em; border-bottom: 1px solid #f0f0f0; vertical-align: top; }
table.events td.num { text-align: right; white-space: nowrap; }
table.events tr.fail td { color: #b00020; }
table.events tr.fail td.call { font-weight: bold; }
.finding { border: 1px solid #ddd; border-left: 4px solid #999; border-radius: 4px; margin: .6em 0;
  padding: .3em .8em; }
.finding.error { border-left-color: #c53030; } .finding.warning { border-left-color: #d69e2e; }
.finding summary { cursor: pointer; } .finding .severity { font-weight: bold; text-transform: uppercase;
  font-size: .8em; } .finding.error .severity { color: #c53030; } .finding.warning .severity { color: #b7791f; }
.finding .seq { color: #666; } .finding ul.evidence { margin: .3em 0; font-size: .95em; }
pre.rule { background: #f7f7f7; border: 1px solid #e2e2e2; padding: .4em .6em; margin: .3em 0; }
)CSS";

// Rows: [seq, time_ms, tid, call, depth, arguments, result, duration_ms, error, ok].
inline constexpr const char* kScript = R"JS(
(function () {
  const rows = JSON.parse(document.getElementById('events-data').textContent);
  const cols = ['seq', 'time', 'tid', 'call', 'args', 'result', 'dur', 'error'];
  const index = {seq: 0, time: 1, tid: 2, call: 3, args: 5, result: 6, dur: 7, error: 8};
  const numeric = {seq: true, time: true, tid: true, dur: true};
  const pageSize = 500;
  let view = rows, page = 0, sortCol = 'seq', sortDir = 1;
  const body = document.querySelector('table.events tbody');
  const filter = document.getElementById('filter');
  const failedOnly = document.getElementById('failed-only');
  const info = document.getElementById('page-info');
  const esc = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
  const text = r => r._t || (r._t = [r[0], r[2], r[3], r[5], r[6], r[8]].join(' ').toLowerCase());
  function apply() {
    const q = filter.value.trim().toLowerCase();
    const terms = q ? q.split(/\s+/) : [];
    view = rows.filter(r => (!failedOnly.checked || !r[9]) && terms.every(t => text(r).includes(t)));
    const i = index[sortCol];
    view.sort((a, b) => {
      const x = a[i], y = b[i];
      const c = numeric[sortCol] ? x - y : String(x).localeCompare(String(y));
      return (c || a[0] - b[0]) * sortDir;
    });
    page = 0;
    render();
  }
  function render() {
    const pages = Math.max(1, Math.ceil(view.length / pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    const slice = view.slice(page * pageSize, (page + 1) * pageSize);
    body.innerHTML = slice.map(r =>
      '<tr' + (r[9] ? '' : ' class="fail"') + '><td class="num">' + r[0] + '</td><td class="num">' +
      r[1].toFixed(3) + '</td><td class="num">' + r[2] + '</td><td class="call">' +
      '&nbsp;'.repeat(2 * Math.min(r[4], 16)) + esc(r[3]) + '</td><td>' + esc(r[5]) +
      '</td><td>' + esc(r[6]) + '</td><td class="num">' + r[7].toFixed(3) + '</td><td>' +
      esc(r[8]) + '</td></tr>').join('');
    info.textContent = view.length + ' of ' + rows.length + ' events, page ' + (page + 1) + ' of ' + pages;
  }
  document.querySelectorAll('table.events th').forEach((th, k) => {
    th.addEventListener('click', () => {
      const col = cols[k];
      sortDir = col === sortCol ? -sortDir : 1;
      sortCol = col;
      document.querySelectorAll('table.events th').forEach(h => h.classList.remove('asc', 'desc'));
      th.classList.add(sortDir > 0 ? 'asc' : 'desc');
      apply();
    });
  });
  let pending = 0;
  filter.addEventListener('input', () => { clearTimeout(pending); pending = setTimeout(apply, 150); });
  failedOnly.addEventListener('change', apply);
  document.getElementById('prev').addEventListener('click', () => { page--; render(); });
  document.getElementById('next').addEventListener('click', () => { page++; render(); });
  // A link can carry a filter: report.html#filter=libfoo%20dlsym (shareable, and testable).
  const m = location.hash.match(/^#filter=(.*)$/);
  if (m) filter.value = decodeURIComponent(m[1]);
  apply();
})();
)JS";

}  // namespace dltrace::viewer::html_assets
