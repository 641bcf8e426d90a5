/* exwatch web: small progressive enhancements; every page works without them.
   Text from the server is only ever set with textContent, never as HTML. */
(function () {
  "use strict";
  document.documentElement.setAttribute("data-js", "ok");

  // The map: a click on a country opens its drill-down.
  var map = document.querySelector("section.map");
  if (map) {
    var scan = map.getAttribute("data-scan") || "";
    map.addEventListener("click", function (event) {
      var node = event.target;
      while (node && node !== map) {
        if (node.classList && node.classList.contains("cty")) {
          var cc = node.getAttribute("data-cc") || "";
          if (/^[A-Z]{2}$/.test(cc)) {
            window.location.href = "/countries/" + cc + "?scan=" + encodeURIComponent(scan);
          }
          return;
        }
        node = node.parentNode;
      }
    });
  }

  // Selects and check boxes of a filter form apply at once.
  Array.prototype.forEach.call(
    document.querySelectorAll("select.autosubmit, form.filter select, form.filter input[type=checkbox]"),
    function (input) {
      input.addEventListener("change", function () { if (input.form) { input.form.submit(); } });
    }
  );

  // A running scan's progress refreshes itself.
  var progress = document.getElementById("progress");
  if (progress && progress.getAttribute("data-status") === "running") {
    var id = progress.getAttribute("data-scan") || "";
    var refresh = function () {
      fetch("/api/scans/" + encodeURIComponent(id), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          Array.prototype.forEach.call(progress.querySelectorAll("[data-field]"), function (el) {
            var value = data[el.getAttribute("data-field")];
            el.textContent = value === null || value === undefined ? "–" :
              (typeof value === "number" ? value.toLocaleString("en") : String(value));
          });
          var bar = progress.querySelector("progress");
          if (bar && typeof data.complete_pct === "number") { bar.value = data.complete_pct; }
          var body = progress.querySelector("#t-parts tbody");
          if (body && Array.isArray(data.parts)) {
            while (body.firstChild) { body.removeChild(body.firstChild); }
            data.parts.forEach(function (p) {
              var tr = document.createElement("tr");
              [p.part, p.status, p.host, p.targets, p.recorded, p.complete_pct, p.started_at, p.finished_at]
                .forEach(function (v) {
                  var td = document.createElement("td");
                  td.textContent = v === null || v === undefined ? "" : String(v);
                  tr.appendChild(td);
                });
              body.appendChild(tr);
            });
          }
          if (data.status === "running") { window.setTimeout(refresh, 2000); }
          else { progress.setAttribute("data-status", String(data.status)); }
        })
        .catch(function () { window.setTimeout(refresh, 5000); });
    };
    window.setTimeout(refresh, 2000);
  }
})();
