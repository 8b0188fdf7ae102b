// Caelus UI: live updates without reloading. A page that names a JSON endpoint in
// <body data-live> polls it about once a second; the server answers with
// server-rendered (escaped) HTML fragments keyed by element id, and only the
// fragments that changed are replaced.
(function () {
  "use strict";
  var url = document.body && document.body.getAttribute("data-live");
  if (!url) return;
  var last = {};
  var busy = false;
  function tick() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/ui/login?next=" + encodeURIComponent(window.location.pathname); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (data) {
        if (!data || !data.fragments) return;
        Object.keys(data.fragments).forEach(function (id) {
          var el = document.getElementById(id);
          var html = data.fragments[id];
          if (el && last[id] !== html) {
            if (last[id] !== undefined || el.innerHTML !== html) el.innerHTML = html;
            last[id] = html;
          }
        });
        if (data.phase) document.body.setAttribute("data-phase", data.phase);
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  setInterval(tick, 1000);
})();
