// cnnkit web page: draw or upload an image, show class probabilities and feature maps; for a
// localise / segment / detect run, the predicted box(es) drawn on the image or the mask overlay.
// Plain browser JavaScript, no libraries, no network access beyond this server.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const state = { busy: false, again: false, drawing: false, last: null, brush: 22,
                task: "classify" };
const BOX_COLORS = ["#ff5252", "#40c4ff", "#69f0ae", "#ffd740", "#e040fb", "#ff6e40"];

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
}

function showError(message) {
  document.getElementById("error").textContent = message || "";
}

async function loadModel() {
  const info = await (await fetch("/model")).json();
  state.task = info.task || "classify";
  state.classNames = info.class_names;
  document.body.dataset.task = state.task;  // CSS hides the classifier-only panels for a task
  document.getElementById("task-output").hidden = state.task === "classify";
  document.getElementById("model-name").textContent = "· " + info.model +
    (state.task === "classify" ? "" : ` (${state.task})`);
  document.getElementById("model-info").textContent =
    `input ${info.input} · ${info.class_names.length} classes · ` +
    `${info.parameters.toLocaleString()} parameters`;
  // A brush about two input pixels wide, like a pen stroke on an MNIST digit.
  state.brush = Math.max(6, Math.round((2 * pad.width) / info.input_shape[2]));
}

function renderBars(result) {
  const bars = document.getElementById("bars");
  bars.replaceChildren();
  const best = result.probabilities.indexOf(Math.max(...result.probabilities));
  result.class_names.forEach((name, i) => {
    const p = result.probabilities[i];
    const row = document.createElement("div");
    row.className = "bar" + (i === best ? " top" : "");
    row.dataset.cls = name;
    row.dataset.probability = String(p);
    row.innerHTML = '<span class="label"></span><span class="track"><span class="fill"></span>' +
                    '</span><span class="value"></span>';
    row.querySelector(".label").textContent = name;
    row.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
    row.querySelector(".value").textContent = (100 * p).toFixed(1) + "%";
    bars.appendChild(row);
  });
  document.getElementById("prediction").textContent = result.predictions[0].class;
}

function renderLayers(result) {
  const holder = document.getElementById("layers");
  holder.replaceChildren();
  document.getElementById("model-input").src = "data:image/png;base64," + result.input;
  for (const layer of result.layers) {
    const div = document.createElement("div");
    div.className = "layer";
    const [c, h, w] = layer.shape;
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = `${layer.name} · ${layer.kind} · ${h}×${w}×${c}` +
      (layer.maps.length < c ? ` (first ${layer.maps.length} of ${c} channels)` : "");
    const maps = document.createElement("div");
    maps.className = "maps";
    for (const png of layer.maps) {
      const img = document.createElement("img");
      img.className = "feature-map";
      img.alt = `${layer.name} channel`;
      img.src = "data:image/png;base64," + png;
      maps.appendChild(img);
    }
    div.append(title, maps);
    holder.appendChild(div);
  }
}

// The picture a task prediction is drawn on: the image scaled to fit the result canvas.
function drawSource(source, width, height) {
  const canvas = document.getElementById("result");
  const scale = Math.min(280 / width, 280 / height);
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const rctx = canvas.getContext("2d");
  rctx.drawImage(source, 0, 0, canvas.width, canvas.height);
  return { rctx, scale };
}

// Boxes are [x_min, y_min, x_max, y_max] in the uploaded image's pixels (max exclusive).
function drawBox(rctx, scale, box, text, color) {
  const [x0, y0, x1, y1] = box.map((v) => v * scale);
  rctx.strokeStyle = color;
  rctx.lineWidth = 2;
  rctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  rctx.font = "12px system-ui, sans-serif";
  const w = rctx.measureText(text).width + 6;
  const ty = y0 >= 16 ? y0 - 16 : y0;
  rctx.fillStyle = color;
  rctx.fillRect(x0, ty, w, 16);
  rctx.fillStyle = "#000";
  rctx.fillText(text, x0 + 3, ty + 12);
}

function detail(text) {
  const item = document.createElement("li");
  item.textContent = text;
  document.getElementById("task-details").appendChild(item);
}

// A localise, segment or detect answer of /predict, shown on the image it was made for.
function renderTask(result, source) {
  const details = document.getElementById("task-details");
  details.replaceChildren();
  const overlay = document.getElementById("overlay");
  const canvas = document.getElementById("result");
  const prediction = document.getElementById("prediction");
  const width = source.naturalWidth || source.width, height = source.naturalHeight || source.height;
  if (result.task === "segment") {
    canvas.hidden = true;
    overlay.hidden = false;
    overlay.width = Math.round(width * Math.min(280 / width, 280 / height));
    overlay.src = "data:image/png;base64," + result.overlay_png;
    const areas = Object.entries(result.areas).sort((a, b) => b[1] - a[1]);
    prediction.textContent = areas.length ? areas[0][0] : "–";
    for (const [name, share] of areas) detail(`${name}: ${(100 * share).toFixed(1)}% of the pixels`);
    return;
  }
  canvas.hidden = false;
  overlay.hidden = true;
  const { rctx, scale } = drawSource(source, width, height);
  if (result.task === "localize") {
    const text = `${result.label} ${(100 * result.probability).toFixed(0)}%`;
    drawBox(rctx, scale, result.box, text, BOX_COLORS[0]);
    prediction.textContent = text;
    detail(`box ${result.box.map((v) => v.toFixed(1)).join(", ")} (x_min, y_min, x_max, y_max)`);
    return;
  }
  result.detections.forEach((d, i) => {
    const color = BOX_COLORS[state.classNames.indexOf(d.label) % BOX_COLORS.length] ||
                  BOX_COLORS[i % BOX_COLORS.length];
    drawBox(rctx, scale, d.box, `${d.label} ${d.score.toFixed(2)}`, color);
    detail(`${d.label} ${d.score.toFixed(2)} at ${d.box.map((v) => v.toFixed(0)).join(", ")}`);
  });
  prediction.textContent = `${result.detections.length} object` +
    (result.detections.length === 1 ? "" : "s");
}

// Send one request at a time; while one is running, remember that the drawing changed.
// ``source`` (a canvas or a loading <img>) is what a task's answer is drawn on.
async function analyse(body, headers, source) {
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  document.body.dataset.busy = "1";  // read by the browser test: a request is in flight
  const endpoint = state.task === "classify" ? "/features" : "/predict";
  try {
    const response = await fetch(endpoint, { method: "POST", headers, body });
    const result = await response.json();
    if (!response.ok) { showError(`${result.error}: ${result.detail}`); return; }
    showError("");
    if (state.task === "classify") {
      renderBars(result);
      renderLayers(result);
    } else {
      if (source.decode) await source.decode();  // an uploaded <img> may still be loading
      renderTask(result, source);
    }
    document.body.dataset.analysed = String(Number(document.body.dataset.analysed || 0) + 1);
  } catch (err) {
    showError(String(err));
  } finally {
    state.busy = false;
    if (state.again) { state.again = false; analyseCanvas(); }
    else { document.body.dataset.busy = "0"; }
  }
}

// Frame a drawing the way MNIST frames its digits: the drawn part is scaled so that its longer
// side fills 20/28 of the square and is centred, whatever size and place it was drawn at.
function framedDrawing() {
  const { width, height } = pad;
  const pixels = ctx.getImageData(0, 0, width, height).data;
  let minX = width, minY = height, maxX = -1, maxY = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (pixels[(y * width + x) * 4] > 0) {
        minX = Math.min(minX, x); maxX = Math.max(maxX, x);
        minY = Math.min(minY, y); maxY = Math.max(maxY, y);
      }
    }
  }
  if (maxX < 0) return pad.toDataURL("image/png");  // nothing drawn yet
  const boxW = maxX - minX + 1, boxH = maxY - minY + 1;
  const scale = (width * 20 / 28) / Math.max(boxW, boxH);
  const framed = document.createElement("canvas");
  framed.width = width;
  framed.height = height;
  const fctx = framed.getContext("2d");
  fctx.fillStyle = "#000";
  fctx.fillRect(0, 0, width, height);
  fctx.drawImage(pad, minX, minY, boxW, boxH, (width - boxW * scale) / 2,
                 (height - boxH * scale) / 2, boxW * scale, boxH * scale);
  return framed.toDataURL("image/png");
}

function analyseCanvas() {
  if (state.task === "classify") {
    analyse(JSON.stringify({ image: framedDrawing() }), { "Content-Type": "application/json" });
    return;
  }
  // A task model is sent the drawing as it is (where things are matters), with a snapshot of
  // the pad to draw the answer on.
  const snapshot = document.createElement("canvas");
  snapshot.width = pad.width;
  snapshot.height = pad.height;
  snapshot.getContext("2d").drawImage(pad, 0, 0);
  analyse(JSON.stringify({ image: snapshot.toDataURL("image/png") }),
          { "Content-Type": "application/json" }, snapshot);
}

function analyseFile(file) {
  if (!file) return;
  const image = new Image();
  image.onload = () => {  // show the photo on the pad, scaled to cover it like the server's crop
    const scale = Math.max(pad.width / image.width, pad.height / image.height);
    clearPad();
    ctx.drawImage(image, (pad.width - image.width * scale) / 2,
                  (pad.height - image.height * scale) / 2,
                  image.width * scale, image.height * scale);
  };
  // The URL stays valid until the next upload: a task's answer is drawn on the whole photo.
  if (state.upload) URL.revokeObjectURL(state.upload);
  state.upload = URL.createObjectURL(file);
  image.src = state.upload;
  const form = new FormData();
  form.append("file", file);
  analyse(form, {}, image);
}

function position(event) {
  const box = pad.getBoundingClientRect();
  return { x: event.clientX - box.left, y: event.clientY - box.top };
}

function stroke(from, to) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = state.brush;
  ctx.lineCap = "round";
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

pad.addEventListener("pointerdown", (e) => {
  state.drawing = true;
  state.last = position(e);
  stroke(state.last, state.last);
  analyseCanvas();
});
pad.addEventListener("pointermove", (e) => {
  if (!state.drawing) return;
  const p = position(e);
  stroke(state.last, p);
  state.last = p;
  analyseCanvas();
});
for (const name of ["pointerup", "pointerleave"]) {
  pad.addEventListener(name, () => {
    if (state.drawing) { state.drawing = false; analyseCanvas(); }
  });
}
pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("dragover"); });
pad.addEventListener("dragleave", () => pad.classList.remove("dragover"));
pad.addEventListener("drop", (e) => {
  e.preventDefault();
  pad.classList.remove("dragover");
  analyseFile(e.dataTransfer.files[0]);
});
document.getElementById("file").addEventListener("change", (e) => analyseFile(e.target.files[0]));
document.getElementById("clear").addEventListener("click", () => { clearPad(); analyseCanvas(); });

clearPad();
loadModel().then(analyseCanvas).catch((err) => showError("cannot load /model: " + err));
