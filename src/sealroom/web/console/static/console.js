// The console's progressive enhancement: live progress over server-sent events and charts.
// Every page works without it (tables hold the same figures; a link refreshes progress).
"use strict";
(function () {
  document.documentElement.classList.add("js");
  var ORDER = ["pending", "approved", "running", "completed"];

  function markSteps(section, status) {
    var at = ORDER.indexOf(status);
    section.querySelectorAll(".steps li").forEach(function (li) {
      var i = ORDER.indexOf(li.dataset.step);
      li.classList.toggle("done", at >= 0 && i < at || status === "completed" && i === at);
      li.classList.toggle("current", i === at && status !== "completed");
    });
    section.dataset.status = status;
  }

  function when(t) {
    return new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function progress() {
    var section = document.getElementById("progress");
    if (!section) return;
    markSteps(section, section.dataset.status);
    if (section.dataset.terminal === "yes" || !window.EventSource) return;
    var text = document.getElementById("progress-text");
    var history = document.getElementById("history");
    var source = new EventSource(section.dataset.events);
    source.addEventListener("status", function (e) {
      var doc = JSON.parse(e.data);
      markSteps(section, doc.status);
      text.textContent = "";
      text.append("Status: ");
      var strong = document.createElement("strong");
      strong.textContent = doc.status;
      text.append(strong);
      if (doc.reason) text.append(" — " + doc.reason);
      history.textContent = "";
      doc.history.forEach(function (h) {
        var li = document.createElement("li");
        li.textContent = when(h.at) + ": " + h.status + (h.reason ? " — " + h.reason : "");
        history.append(li);
      });
      if (doc.terminal) {
        source.close();
        section.dataset.terminal = "yes";
        // The result is opened and verified by the server-rendered page: load it.
        window.location.reload();
      }
    });
    source.addEventListener("end", function () { source.close(); });  // sent only when final
    source.addEventListener("failure", function (e) {
      source.close();
      text.textContent = "Live progress stopped: " + JSON.parse(e.data).error + ". Refresh the page.";
    });
  }

  var PALETTE = ["#0b5cad", "#d1741f", "#1a7f37", "#8250df", "#b42318", "#59636e"];

  function charts() {
    var holder = document.getElementById("chart-data");
    if (!holder || !window.Chart) return;
    JSON.parse(holder.textContent).forEach(function (spec) {
      var canvas = document.getElementById("chart-" + spec.id);
      if (!canvas) return;
      var datasets = spec.datasets.map(function (d, i) {
        var colour = PALETTE[i % PALETTE.length];
        var out = { label: d.label, data: d.data, backgroundColor: colour + "b3", borderColor: colour, borderWidth: 1 };
        if (d.stack) out.stack = d.stack;
        if (d.type === "line") {
          out.type = "line"; out.showLine = false; out.pointRadius = 6; out.pointStyle = "rectRot";
          out.backgroundColor = colour;
        }
        return out;
      });
      var valueAxis = spec.horizontal ? "x" : "y";
      var scales = {};
      scales[valueAxis] = { title: { display: !!spec.valueTitle, text: spec.valueTitle } };
      var stacked = spec.datasets.some(function (d) { return d.stack; });
      if (stacked) { scales.x = Object.assign(scales.x || {}, { stacked: true }); scales.y = Object.assign(scales.y || {}, { stacked: true }); }
      canvas.parentElement.style.height = Math.max(288, spec.horizontal ? spec.labels.length * 28 + 80 : 288) + "px";
      new window.Chart(canvas, {
        type: "bar",
        data: { labels: spec.labels, datasets: datasets },
        options: {
          indexAxis: spec.horizontal ? "y" : "x",
          responsive: true, maintainAspectRatio: false, animation: false,
          plugins: { title: { display: false }, legend: { position: "bottom" } },
          scales: scales
        }
      });
      canvas.dataset.rendered = "yes";
    });
  }

  document.addEventListener("DOMContentLoaded", function () { progress(); charts(); });
})();
