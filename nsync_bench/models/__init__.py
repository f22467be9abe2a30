"""Base diffusion components: tiny seeded ones (smoke), the toy world's, pretrained ones (hub id or
local dir), the full-size SD architectures at random weights, the CLIP tokenizer, and device resolution."""
