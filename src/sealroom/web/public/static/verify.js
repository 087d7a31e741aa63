// The verifier page's progressive enhancement: drag-and-drop onto the file field, a size
// check before uploading, and fetching a linked bundle (https) in the reader's browser.
// Without script the form still works: choose a file or paste the JSON, then submit.
(function () {
  "use strict";
  var form = document.getElementById("verify-form");
  if (!form) { return; }
  var max = parseInt(form.getAttribute("data-max"), 10);
  var input = document.getElementById("bundle");
  var text = document.getElementById("bundle_text");
  var drop = document.getElementById("drop");
  var status = document.getElementById("file-status");
  var urlField = document.getElementById("bundle_url");
  var fetchButton = document.getElementById("fetch-url");
  var extras = form.querySelectorAll(".js-only");
  for (var i = 0; i < extras.length; i++) { extras[i].hidden = false; }

  function say(message) { status.textContent = message; }

  function tooBig(size) {
    if (size > max) {
      say("This bundle is " + size + " bytes; this page takes at most " + max +
          ". Verify it offline with: sealroom verify <file>");
      return true;
    }
    return false;
  }

  input.addEventListener("change", function () {
    if (input.files.length) {
      var f = input.files[0];
      if (!tooBig(f.size)) { say("Selected " + f.name + " (" + f.size + " bytes)."); }
    }
  });

  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (event) {
      event.preventDefault();
      drop.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (event) {
    event.preventDefault();
    var files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) { return; }
    if (tooBig(files[0].size)) { return; }
    input.files = files;
    say("Dropped " + files[0].name + " (" + files[0].size + " bytes). Press Verify.");
  });

  form.addEventListener("submit", function (event) {
    if (input.files.length && tooBig(input.files[0].size)) { event.preventDefault(); }
  });

  function fetchBundle(url) {
    if (!/^https:\/\//i.test(url)) { say("The link must start with https://"); return; }
    say("Fetching " + url + " ...");
    fetch(url, { credentials: "omit", redirect: "follow", referrerPolicy: "no-referrer" })
      .then(function (response) {
        if (!response.ok) { throw new Error("the server answered " + response.status); }
        return response.text();
      })
      .then(function (body) {
        if (tooBig(body.length)) { return; }
        input.value = "";
        text.value = body;
        say("Fetched " + body.length + " bytes; verifying.");
        form.submit();
      })
      .catch(function (error) {
        say("Could not fetch the bundle (" + error.message + "). The host must allow " +
            "cross-origin reads; otherwise download it and choose the file.");
      });
  }

  fetchButton.addEventListener("click", function () { fetchBundle(urlField.value.trim()); });
  var match = /^#bundle=(.+)$/.exec(window.location.hash);
  if (match) {
    var linked = decodeURIComponent(match[1]);
    urlField.value = linked;
    fetchBundle(linked);
  }
})();
