// The share-link viewer: series, images and frames rendered by the hub, window/level, zoom and pan.
// Mouse, keyboard and touch (pointer events). No third-party code; everything comes from the hub.
(function () {
  "use strict";

  var base = document.body.getAttribute("data-base");
  var viewport = document.getElementById("viewport");
  var image = document.getElementById("image");
  var video = document.getElementById("video");
  var message = document.getElementById("message");
  var overlay = document.getElementById("overlay");
  var preset = document.getElementById("preset");

  var state = {
    series: [], seriesIndex: 0, slices: [], sliceIndex: 0,
    window: null, shownWindow: null, zoom: 1, panX: 0, panY: 0, mode: "window",
    loading: false, pending: false, objectUrl: null
  };
  var pointers = {};
  var drag = null;
  var PREFETCH = 2;
  var cache = {};     // url -> object URL of a prefetched image

  function slicesOf(series) {
    var slices = [];
    series.instances.forEach(function (instance) {
      var frames = instance.kind === "image" ? instance.frames : 1;
      for (var f = 1; f <= frames; f += 1) {
        slices.push({ instance: instance, frame: f });
      }
    });
    return slices;
  }

  function viewportSize() {
    var ratio = Math.min(window.devicePixelRatio || 1, 2);
    var w = Math.max(64, Math.min(4096, Math.round(viewport.clientWidth * ratio)));
    var h = Math.max(64, Math.min(4096, Math.round(viewport.clientHeight * ratio)));
    return w + "," + h;
  }

  function frameUrl(slice) {
    var url = base + "/instances/" + slice.instance.uid + "/frames/" + slice.frame + ".jpg?viewport=" + viewportSize();
    if (state.window) {
      url += "&window=" + Math.round(state.window[0]) + "," + Math.max(1, Math.round(state.window[1]));
    }
    return url;
  }

  function say(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function describe() {
    var series = state.series[state.seriesIndex];
    var slice = state.slices[state.sliceIndex];
    if (!series || !slice) { overlay.textContent = ""; return; }
    var parts = [
      (series.description || series.modality || "Series"),
      "Image " + (state.sliceIndex + 1) + " / " + state.slices.length
    ];
    if (slice.instance.frames > 1) { parts.push("Frame " + slice.frame + " / " + slice.instance.frames); }
    var w = state.window || state.shownWindow;
    if (w) { parts.push("W " + Math.round(w[1]) + " L " + Math.round(w[0])); }
    if (state.zoom !== 1) { parts.push("Zoom " + state.zoom.toFixed(1) + "x"); }
    overlay.textContent = parts.join(" · ");
  }

  function applyTransform() {
    image.style.transform = "translate(" + state.panX + "px," + state.panY + "px) scale(" + state.zoom + ")";
    describe();
  }

  function fetchImage(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          throw new Error(body.detail || ("the image could not be loaded (" + response.status + ")"));
        });
      }
      var used = response.headers.get("X-Window");
      return response.blob().then(function (blob) {
        return { objectUrl: URL.createObjectURL(blob), window: used ? used.split(",").map(Number) : null };
      });
    });
  }

  function prefetch() {
    for (var step = 1; step <= PREFETCH; step += 1) {
      [state.sliceIndex + step, state.sliceIndex - step].forEach(function (index) {
        var slice = state.slices[index];
        if (!slice || slice.instance.kind !== "image") { return; }
        var url = frameUrl(slice);
        if (cache[url]) { return; }
        cache[url] = fetchImage(url).catch(function () { delete cache[url]; return null; });
      });
    }
  }

  function showImage(slice) {
    if (state.loading) { state.pending = true; return; }
    state.loading = true;
    var url = frameUrl(slice);
    var request = cache[url] || fetchImage(url);
    delete cache[url];
    request.then(function (loaded) {
      if (!loaded) { throw new Error("the image could not be loaded"); }
      if (state.objectUrl) { URL.revokeObjectURL(state.objectUrl); }
      state.objectUrl = loaded.objectUrl;
      if (loaded.window) { state.shownWindow = loaded.window; }
      image.src = loaded.objectUrl;
      image.hidden = false;
      image.setAttribute("data-shown", url);
      say("");
    }).catch(function (error) {
      image.hidden = true;
      say("This image cannot be shown: " + error.message);
    }).then(function () {
      state.loading = false;
      describe();
      if (state.pending) { state.pending = false; show(); } else if (!drag) { prefetch(); }
    });
  }

  function show() {
    var slice = state.slices[state.sliceIndex];
    video.hidden = true;
    video.removeAttribute("src");
    if (!slice) { image.hidden = true; say("Nothing in this series can be shown."); return; }
    var kind = slice.instance.kind;
    if (kind === "image") {
      showImage(slice);
      return;
    }
    image.hidden = true;
    var media = base + "/instances/" + slice.instance.uid + "/media";
    if (kind === "video") {
      say("");
      video.src = media;
      video.hidden = false;
    } else if (kind === "pdf") {
      message.textContent = "";
      var link = document.createElement("a");
      link.href = media;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = "Open the document (PDF)";
      message.appendChild(link);
      message.hidden = false;
    } else {
      say("This object (" + kind + ") has no image to show.");
    }
    describe();
  }

  function selectSeries(index) {
    if (index < 0 || index >= state.series.length) { return; }
    state.seriesIndex = index;
    state.slices = slicesOf(state.series[index]);
    state.sliceIndex = Math.floor(state.slices.length / 2);
    state.shownWindow = null;
    dropCache();
    document.querySelectorAll(".series-button").forEach(function (button, i) {
      button.classList.toggle("active", i === index);
      button.setAttribute("aria-pressed", i === index ? "true" : "false");
    });
    show();
  }

  function step(delta) {
    var next = Math.max(0, Math.min(state.slices.length - 1, state.sliceIndex + delta));
    if (next !== state.sliceIndex) { state.sliceIndex = next; show(); }
  }

  function setMode(mode) {
    state.mode = mode;
    document.querySelectorAll(".mode").forEach(function (button) {
      button.classList.toggle("active", button.getAttribute("data-mode") === mode);
    });
  }

  function fit() {
    state.zoom = 1; state.panX = 0; state.panY = 0;
    applyTransform();
  }

  function dropCache() {
    Object.keys(cache).forEach(function (url) {
      cache[url].then(function (loaded) { if (loaded) { URL.revokeObjectURL(loaded.objectUrl); } });
    });
    cache = {};
  }

  function setWindow(value) {
    state.window = value;
    dropCache();
    show();
  }

  // -- pointer input: one pointer does the mode's action, two pointers pinch-zoom ---------------------------
  viewport.addEventListener("pointerdown", function (event) {
    viewport.setPointerCapture(event.pointerId);
    pointers[event.pointerId] = { x: event.clientX, y: event.clientY };
    var ids = Object.keys(pointers);
    if (ids.length === 2) {
      var a = pointers[ids[0]], b = pointers[ids[1]];
      drag = { pinch: Math.hypot(a.x - b.x, a.y - b.y), zoom: state.zoom };
    } else {
      drag = { x: event.clientX, y: event.clientY, zoom: state.zoom, panX: state.panX, panY: state.panY,
               window: state.window || state.shownWindow || [128, 256], slice: state.sliceIndex };
    }
    event.preventDefault();
  });

  viewport.addEventListener("pointermove", function (event) {
    if (!drag || !pointers[event.pointerId]) { return; }
    pointers[event.pointerId] = { x: event.clientX, y: event.clientY };
    var ids = Object.keys(pointers);
    if (drag.pinch && ids.length === 2) {
      var a = pointers[ids[0]], b = pointers[ids[1]];
      state.zoom = Math.max(0.25, Math.min(16, drag.zoom * Math.hypot(a.x - b.x, a.y - b.y) / drag.pinch));
      applyTransform();
      return;
    }
    if (drag.pinch) { return; }
    var dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (state.mode === "pan") {
      state.panX = drag.panX + dx; state.panY = drag.panY + dy;
      applyTransform();
    } else if (state.mode === "zoom") {
      state.zoom = Math.max(0.25, Math.min(16, drag.zoom * Math.pow(1.01, -dy)));
      applyTransform();
    } else if (state.mode === "scroll") {
      var target = drag.slice + Math.round(dy / 8);
      step(target - state.sliceIndex);
    } else {
      var scale = Math.max(1, drag.window[1] / 256);
      state.window = [drag.window[0] + dy * scale, Math.max(1, drag.window[1] + dx * scale)];
      preset.value = "";
      describe();
      show();
    }
  });

  function release(event) {
    delete pointers[event.pointerId];
    if (Object.keys(pointers).length === 0) {
      var windowed = drag && !drag.pinch && state.mode === "window";
      drag = null;
      if (windowed) { dropCache(); prefetch(); }
    }
  }
  viewport.addEventListener("pointerup", release);
  viewport.addEventListener("pointercancel", release);

  viewport.addEventListener("wheel", function (event) {
    event.preventDefault();
    if (event.ctrlKey) {
      state.zoom = Math.max(0.25, Math.min(16, state.zoom * (event.deltaY < 0 ? 1.1 : 0.9)));
      applyTransform();
    } else {
      step(event.deltaY > 0 ? 1 : -1);
    }
  }, { passive: false });

  document.addEventListener("keydown", function (event) {
    if (event.target && event.target.tagName === "SELECT") { return; }
    var keys = {
      ArrowDown: function () { step(1); }, ArrowUp: function () { step(-1); },
      PageDown: function () { step(10); }, PageUp: function () { step(-10); },
      Home: function () { step(-state.slices.length); }, End: function () { step(state.slices.length); },
      ArrowRight: function () { selectSeries(state.seriesIndex + 1); },
      ArrowLeft: function () { selectSeries(state.seriesIndex - 1); },
      w: function () { setMode("window"); }, p: function () { setMode("pan"); },
      z: function () { setMode("zoom"); }, s: function () { setMode("scroll"); },
      f: fit, r: function () { fit(); preset.value = ""; setWindow(null); }
    };
    var action = keys[event.key];
    if (action) { event.preventDefault(); action(); }
  });

  document.querySelectorAll(".mode").forEach(function (button) {
    button.addEventListener("click", function () { setMode(button.getAttribute("data-mode")); });
  });
  document.getElementById("fit").addEventListener("click", fit);
  document.getElementById("previous").addEventListener("click", function () { step(-1); });
  document.getElementById("next").addEventListener("click", function () { step(1); });
  preset.addEventListener("change", function () {
    setWindow(preset.value ? preset.value.split(",").map(Number) : null);
  });
  document.querySelectorAll(".series-button").forEach(function (button, index) {
    button.addEventListener("click", function () { selectSeries(index); });
  });

  fetch(base + "/study.json", { credentials: "same-origin" }).then(function (response) {
    if (!response.ok) { throw new Error("the study could not be loaded (" + response.status + ")"); }
    return response.json();
  }).then(function (study) {
    state.series = study.series;
    if (window.matchMedia && window.matchMedia("(pointer: coarse)").matches) { setMode("scroll"); }
    selectSeries(0);
  }).catch(function (error) { say(error.message); });
}());
