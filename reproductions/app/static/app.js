// The comparison page: load a photo, paint the hole on a canvas, send the photo and
// the mask to /api/inpaint once per method, and show each result as it arrives.
"use strict";

const $ = (id) => document.getElementById(id);
const photoCanvas = $("photo-canvas");
const maskCanvas = $("mask-canvas");
const maskContext = maskCanvas.getContext("2d", { willReadFrequently: true });
const HOLE_COLOUR = "#ff2020";  // painted opaque; the canvas is shown half transparent
const UNDO_LIMIT = 30;

const state = {
  photo: null,       // the photo file as sent to the server (a Blob), and its name
  photoName: "",
  tool: "brush",
  drawing: false,
  last: null,
  undo: [],          // ImageData snapshots of the mask canvas
  busy: false,
};

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function hasHole() {
  const { data } = maskContext.getImageData(0, 0, maskCanvas.width, maskCanvas.height);
  for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) return true;
  return false;
}

function updateFillButton() {
  const chosen = document.querySelectorAll("#methods input:checked").length;
  $("fill").disabled = state.busy || !state.photo || chosen === 0;
}

// ---- the photo ----

async function loadPhoto(blob, name) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);  // EXIF orientation applied, as the server reads it
  } catch (error) {
    setStatus(`Cannot read ${name} as an image.`, true);
    return;
  }
  for (const canvas of [photoCanvas, maskCanvas]) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  photoCanvas.getContext("2d").drawImage(bitmap, 0, 0);
  state.photo = blob;
  state.photoName = name;
  state.undo = [];
  $("drop-zone").classList.remove("empty");
  setStatus(`${name}: ${bitmap.width}x${bitmap.height} px. Paint the hole.`);
  updateFillButton();
}

async function loadSample(name) {
  const response = await fetch(`/api/samples/${encodeURIComponent(name)}`);
  if (!response.ok) {
    setStatus(`Sample ${name}: ${response.status}`, true);
    return;
  }
  await loadPhoto(await response.blob(), `${name}.png`);
}

// ---- painting the hole ----

function remember() {
  state.undo.push(maskContext.getImageData(0, 0, maskCanvas.width, maskCanvas.height));
  if (state.undo.length > UNDO_LIMIT) state.undo.shift();
}

function canvasPoint(event) {
  const box = maskCanvas.getBoundingClientRect();
  return {
    x: (event.clientX - box.left) * maskCanvas.width / box.width,
    y: (event.clientY - box.top) * maskCanvas.height / box.height,
  };
}

function brushWidth() {
  // The slider is in screen pixels; the canvas may be shown smaller than it is.
  const box = maskCanvas.getBoundingClientRect();
  return Number($("brush-size").value) * maskCanvas.width / Math.max(box.width, 1);
}

function paintSegment(from, to) {
  maskContext.save();
  maskContext.globalCompositeOperation = state.tool === "eraser" ? "destination-out" : "source-over";
  maskContext.strokeStyle = HOLE_COLOUR;
  maskContext.fillStyle = HOLE_COLOUR;
  maskContext.lineWidth = brushWidth();
  maskContext.lineCap = "round";
  maskContext.lineJoin = "round";
  maskContext.beginPath();
  maskContext.moveTo(from.x, from.y);
  maskContext.lineTo(to.x + 0.01, to.y);  // a click paints a dot
  maskContext.stroke();
  maskContext.restore();
}

maskCanvas.addEventListener("pointerdown", (event) => {
  if (!state.photo) return;
  maskCanvas.setPointerCapture(event.pointerId);
  remember();
  state.drawing = true;
  state.last = canvasPoint(event);
  paintSegment(state.last, state.last);
});
maskCanvas.addEventListener("pointermove", (event) => {
  if (!state.drawing) return;
  const point = canvasPoint(event);
  paintSegment(state.last, point);
  state.last = point;
});
for (const type of ["pointerup", "pointercancel"]) {
  maskCanvas.addEventListener(type, () => { state.drawing = false; });
}

async function loadMaskFile(file) {
  if (!state.photo) {
    setStatus("Open a photo first, then its mask.", true);
    return;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (error) {
    setStatus(`Cannot read ${file.name} as an image.`, true);
    return;
  }
  if (bitmap.width !== maskCanvas.width || bitmap.height !== maskCanvas.height) {
    setStatus(`${file.name} is ${bitmap.width}x${bitmap.height} px but the photo is ` +
              `${maskCanvas.width}x${maskCanvas.height}: a mask must have the photo's size.`, true);
    return;
  }
  const scratch = document.createElement("canvas");
  scratch.width = bitmap.width;
  scratch.height = bitmap.height;
  const context = scratch.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const pixels = context.getImageData(0, 0, scratch.width, scratch.height);
  const { data } = pixels;
  for (let i = 0; i < data.length; i += 4) {
    const white = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2] > 127;
    data[i] = 255; data[i + 1] = 32; data[i + 2] = 32; data[i + 3] = white ? 255 : 0;
  }
  remember();
  maskContext.putImageData(pixels, 0, 0);
  setStatus(`Mask ${file.name} loaded; paint or erase to change it.`);
}

// The painted hole as the mask the server reads: opaque, white = hole, black = known.
function maskPixels() {
  const pixels = maskContext.getImageData(0, 0, maskCanvas.width, maskCanvas.height);
  const { data } = pixels;
  for (let i = 0; i < data.length; i += 4) {
    const value = data[i + 3] >= 128 ? 255 : 0;
    data[i] = value; data[i + 1] = value; data[i + 2] = value; data[i + 3] = 255;
  }
  return pixels;
}

function pixelsToCanvas(pixels) {
  const canvas = document.createElement("canvas");
  canvas.width = pixels.width;
  canvas.height = pixels.height;
  canvas.getContext("2d").putImageData(pixels, 0, 0);
  return canvas;
}

// A transparent image with the hole's border in yellow, laid over each result: the
// hole pixels within `thickness` of a known one, thick enough to survive the tiles'
// downscaling.
function outlineUrl(mask) {
  const { width, height, data } = mask;
  const thickness = Math.max(1, Math.round(Math.max(width, height) / 256));
  const outline = new ImageData(width, height);
  const hole = (x, y) => x < 0 || y < 0 || x >= width || y >= height || data[4 * (y * width + x)] > 0;
  const nearKnown = (x, y) => {
    for (let dy = -thickness; dy <= thickness; dy++) {
      for (let dx = -thickness; dx <= thickness; dx++) if (!hole(x + dx, y + dy)) return true;
    }
    return false;
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[4 * (y * width + x)] > 0 && nearKnown(x, y)) {
        const i = 4 * (y * width + x);
        outline.data[i] = 255; outline.data[i + 1] = 230; outline.data[i + 2] = 0; outline.data[i + 3] = 255;
      }
    }
  }
  return pixelsToCanvas(outline).toDataURL("image/png");
}

// ---- methods and results ----

const fillsOf = {};  // method name -> where it fills ("anywhere", or its central square)

async function loadMethods() {
  const response = await fetch("/api/methods");
  const methods = await response.json();
  const box = $("methods");
  for (const method of methods) {
    fillsOf[method.name] = method.fills;
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.checked = true;
    input.value = method.name;
    input.addEventListener("change", updateFillButton);
    label.append(input, ` ${method.name} `);
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = `(${method.kind}${method.fills === "anywhere" ? "" : "; fills " + method.fills})`;
    label.append(note);
    box.append(label);
  }
  updateFillButton();
}

function makeTile(name) {
  const tile = document.createElement("article");
  tile.className = "tile pending";
  tile.dataset.method = name;
  tile.innerHTML = `<h2></h2><div class="frame"></div>
    <div class="meta"><span class="seconds"></span><a class="download" hidden>PNG</a></div>
    <p class="fills note" hidden></p><p class="warning" hidden></p><p class="error" hidden></p>`;
  tile.querySelector("h2").textContent = name;
  if (fillsOf[name] && fillsOf[name] !== "anywhere") {
    const fills = tile.querySelector(".fills");
    fills.hidden = false;
    fills.textContent = `Fills ${fillsOf[name]}.`;
  }
  return tile;
}

function showResult(tile, entry, outline) {
  tile.classList.remove("pending");
  if (entry.error) {
    const error = tile.querySelector(".error");
    error.hidden = false;
    error.textContent = entry.error;
    return;
  }
  const frame = tile.querySelector(".frame");
  const image = new Image();
  image.className = "result";
  image.alt = `${entry.method}: completed photo`;
  image.src = `data:image/png;base64,${entry.png}`;
  const border = new Image();
  border.className = "outline";
  border.alt = "";
  border.src = outline;
  frame.append(image, border);
  frame.addEventListener("click", () => openViewer(image.src, outline, entry));
  tile.querySelector(".seconds").textContent = `${entry.seconds.toFixed(2)} s`;
  const link = tile.querySelector(".download");
  link.hidden = false;
  link.href = image.src;
  link.download = `${state.photoName.replace(/\.[^.]*$/, "")}_${entry.method.replace(/[^\w.-]+/g, "_")}.png`;
  if (entry.warning) {
    const warning = tile.querySelector(".warning");
    warning.hidden = false;
    warning.textContent = entry.warning;
  }
}

function openViewer(src, outline, entry) {
  $("viewer-image").src = src;
  $("viewer-outline").src = outline;
  $("viewer-caption").textContent = `${entry.method}, ${entry.seconds.toFixed(2)} s`;
  $("viewer").hidden = false;
}

async function fill() {
  if (!hasHole()) {
    setStatus("Paint the hole first (or load a mask file).", true);
    return;
  }
  const chosen = [...document.querySelectorAll("#methods input:checked")].map((input) => input.value);
  const mask = maskPixels();
  const outline = outlineUrl(mask);
  const maskBlob = await new Promise((resolve) => pixelsToCanvas(mask).toBlob(resolve, "image/png"));
  const results = $("results");
  results.replaceChildren(...chosen.map(makeTile));
  state.busy = true;
  updateFillButton();
  let failed = 0;
  for (const [index, name] of chosen.entries()) {
    setStatus(`Filling with ${name} (${index + 1} of ${chosen.length})…`);
    const tile = results.children[index];
    const form = new FormData();
    form.append("image", state.photo, state.photoName);
    form.append("mask", maskBlob, "mask.png");
    form.append("methods", name);
    let entry;
    try {
      const response = await fetch("/api/inpaint", { method: "POST", body: form });
      const answer = await response.json();
      entry = response.ok ? answer.results[0] : { method: name, error: answer.error };
    } catch (error) {
      entry = { method: name, error: `The request failed: ${error}` };
    }
    if (entry.error) failed += 1;
    showResult(tile, entry, outline);
  }
  state.busy = false;
  updateFillButton();
  setStatus(`Done: ${chosen.length - failed} of ${chosen.length} methods filled the hole` +
            (failed ? ` (${failed} failed: see their tiles).` : "."), failed > 0);
  document.body.dataset.filled = String(Number(document.body.dataset.filled || 0) + 1);
}

// ---- wiring ----

$("photo-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) loadPhoto(file, file.name);
});
$("mask-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) loadMaskFile(file);
  event.target.value = "";
});
$("sample-select").addEventListener("change", (event) => {
  if (event.target.value) loadSample(event.target.value);
});
$("brush-size").addEventListener("input", (event) => { $("brush-size-value").textContent = event.target.value; });
for (const tool of ["brush", "eraser"]) {
  $(`tool-${tool}`).addEventListener("click", () => {
    state.tool = tool;
    $("tool-brush").classList.toggle("active", tool === "brush");
    $("tool-eraser").classList.toggle("active", tool === "eraser");
  });
}
$("undo").addEventListener("click", () => {
  const previous = state.undo.pop();
  if (previous) maskContext.putImageData(previous, 0, 0);
});
$("clear").addEventListener("click", () => {
  remember();
  maskContext.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
});
$("fill").addEventListener("click", fill);
$("show-outline").addEventListener("change", (event) => {
  document.body.classList.toggle("no-outline", !event.target.checked);
});
$("viewer").addEventListener("click", () => { $("viewer").hidden = true; });

const dropZone = $("drop-zone");
dropZone.addEventListener("dragover", (event) => { event.preventDefault(); dropZone.classList.add("dragging"); });
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  const file = event.dataTransfer.files[0];
  if (file) loadPhoto(file, file.name);
});

(async () => {
  const samples = await (await fetch("/api/samples")).json();
  for (const name of samples) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    $("sample-select").append(option);
  }
  await loadMethods();
  document.body.dataset.ready = "true";
})();
