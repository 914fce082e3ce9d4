"""Stage 6, visual side: 2D skeletons on the video and a 3D panel beside or inside it."""


