"""Export of a run's adapter to other tools (diffusers, AUTOMATIC1111/ComfyUI, kohya) with a model card."""
