// mfm-store ui: the little script the pages use (served from /static, no inline script).
// It never writes anything: it polls read-only JSON endpoints and reloads the page.
"use strict";
(function () {
  var body = document.body;

  function poll(url, every, onData) {
    var stopped = false;
    function tick() {
      if (stopped) return;
      fetch(url, { cache: "no-store", credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data && onData(data) === false) { stopped = true; return; }
          setTimeout(tick, every);
        })
        .catch(function () { setTimeout(tick, every * 4); });
    }
    setTimeout(tick, every);
  }

  // An open run's page follows its head and reloads when new events land.
  var live = body.getAttribute("data-live");
  if (live) {
    var head = Number(body.getAttribute("data-head"));
    poll(live, 2000, function (data) {
      if (typeof data.head === "number" && data.head !== head) {
        var note = document.getElementById("live");
        if (note) note.textContent = (data.head - head) + " new event(s): reloading…";
        window.location.reload();
        return false;
      }
      return true;
    });
  }

  // The verify page shows the check's progress, then reloads to show the report.
  var verify = body.getAttribute("data-verify");
  if (verify) {
    var bar = document.querySelector("#verify-progress progress");
    var text = document.querySelector("#verify-progress .progress-text");
    poll(verify, 250, function (data) {
      if (data.state !== "running") { window.location.reload(); return false; }
      if (bar && data.total) { bar.max = data.total; bar.value = data.done; }
      if (text) {
        text.textContent = data.done.toLocaleString() +
          (data.total ? " of " + data.total.toLocaleString() : "") + " rows checked";
      }
      return true;
    });
  }
})();
