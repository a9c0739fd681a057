"""Every bound the tool puts on what it reads, decodes, accepts or draws: one place, so no reader is unbounded.

A file over its size cap is refused before a byte of it is read; an image whose header promises more pixels
than the budget is refused before the decoder allocates them.
"""

from __future__ import annotations

MIB = 1024 * 1024

# Files, by what they hold (checked against the size on disk before reading).
MAX_TEXT_FILE_BYTES = 256 * MIB  # label files, class CSVs, split files (a million rows is about 50 MB)
MAX_JSON_FILE_BYTES = 256 * MIB  # bundle.json, a checkpoint's state.json, output-folder manifests
MAX_IMAGE_FILE_BYTES = 1024 * MIB  # an uncompressed 100-megapixel 16-bit TIFF is 600 MB
MAX_MODEL_FILE_BYTES = 4096 * MIB  # weights files, model.keras, exported models

# Decoding an image: TensorFlow's decoder allocates every frame of an animated GIF, so the budget covers them all.
MAX_IMAGE_PIXELS = 100_000_000  # per file, frames included: ~300 MB as RGB uint8
MAX_IMAGE_FRAMES = 1000  # frames counted before the file is refused (each costs a seek through the file)

# Reading a pickled PyTorch state dict (models/torch_weights.py): a state dict is a shallow tree of tensors.
MAX_PICKLE_OPCODES = 5_000_000  # each opcode builds at most one object
MAX_PICKLE_DEPTH = 16  # nested dicts
MAX_TENSOR_DIMENSIONS = 8

# The web page.
MAX_UPLOAD_MB = 20  # larger uploads are refused while they arrive (the default of app.py --max-upload-mb)
MAX_DISPLAY_SIDE = 2048  # pictures on the page are scaled down to this side (WebP, the page's format, stops at 16383)

# The HTTP service (serve.py); each enforced before a request's whole body is stored.
MAX_REQUEST_MB = MAX_UPLOAD_MB  # one request's body
MAX_FILES_PER_REQUEST = 32
MAX_CONCURRENT_REQUESTS = 64  # in flight at once; more are answered 503 at once
