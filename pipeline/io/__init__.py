"""Stage 1 and the data side of stage 6: ffmpeg, video decode/encode, exports, and downloadable weights."""


