// Slipway console: streams a running job's log over server-sent events.
// EventSource reconnects by itself and sends Last-Event-ID, so a dropped
// connection resumes after the last line shown; it keeps going in a background tab.
(function () {
  'use strict';
  var log = document.getElementById('log');
  if (!log || log.dataset.done === 'true') { return; }
  var status = document.getElementById('job-status');
  var es = new EventSource('/jobs/' + encodeURIComponent(log.dataset.job) + '/events?after=' + encodeURIComponent(log.dataset.after || '0'));
  var atBottom = function () { return window.innerHeight + window.scrollY >= document.body.offsetHeight - 40; };
  es.addEventListener('line', function (ev) {
    var d = JSON.parse(ev.data);
    if (!d.line) { return; }
    var follow = atBottom();
    var span = document.createElement('span');
    span.className = 'line';
    span.dataset.seq = d.line.seq;
    span.textContent = d.line.text;
    log.appendChild(span);
    log.appendChild(document.createTextNode('\n'));
    if (follow) { window.scrollTo(0, document.body.scrollHeight); }
  });
  es.addEventListener('end', function (ev) {
    es.close();
    var d = JSON.parse(ev.data);
    if (d.job && status) {
      status.innerHTML = '';
      var b = document.createElement('span');
      b.className = 'badge s-' + d.job.status;
      b.textContent = d.job.status;
      status.appendChild(b);
    }
    log.dataset.done = 'true';
    var cancel = document.getElementById('cancel-form');
    if (cancel) { cancel.remove(); }
  });
})();

// The store page's app log: every instance's output (and the store's deploy
// log), named by source, over server-sent events. EventSource resumes with
// Last-Event-ID after a drop, and keeps streaming in a background tab.
(function () {
  'use strict';
  var log = document.getElementById('applog');
  if (!log || !window.EventSource) { return; }
  var state = document.getElementById('applog-state');
  var keep = 1000;
  var es = new EventSource('/stores/' + encodeURIComponent(log.dataset.store) + '/logs/events');
  var say = function (t) { if (state) { state.textContent = t; } };
  es.onopen = function () { say('streaming'); };
  es.onerror = function () { say('reconnecting…'); };
  es.addEventListener('line', function (ev) {
    var d = JSON.parse(ev.data);
    var follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
    var row = document.createElement('span');
    row.className = 'line';
    var src = document.createElement('span');
    src.className = 'src' + (d.source.indexOf('deploy') === 0 ? ' deploy' : '');
    src.textContent = '[' + d.source + '] ';
    row.appendChild(src);
    row.appendChild(document.createTextNode(d.text + '\n'));
    log.appendChild(row);
    while (log.childNodes.length > keep) { log.removeChild(log.firstChild); }
    if (follow) { log.scrollTop = log.scrollHeight; }
  });
  es.addEventListener('failed', function (ev) { say(JSON.parse(ev.data).error); });
})();
