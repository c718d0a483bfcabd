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
