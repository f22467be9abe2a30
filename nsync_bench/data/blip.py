"""BLIP image captioning (``Salesforce/blip-image-captioning-large`` by default), via transformers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from PIL import Image

from nsync_bench.data.captioner import Captioner, captioner_model_id, model_not_available, pinned_revision
from nsync_bench.errors import ConfigError
from nsync_bench.models.device import resolve_device
from nsync_bench.models.hub import load_hf

if TYPE_CHECKING:
    import torch

BLIP_LARGE = "Salesforce/blip-image-captioning-large"


class BlipCaptioner(Captioner):
    """BLIP image captioning (transformers), greedy decoding so captions are reproducible.

    With ``prompt`` BLIP continues that text ("a painting of" -> "a painting of a red house"), so
    the caption starts with the prompt. The model loads on the first :meth:`caption` call.
    """

    name = "blip"

    def __init__(self, model: str = BLIP_LARGE, prompt: str = "", max_new_tokens: int = 40,
                 device: str = "auto", batch_size: int = 8, revision: str | None = None) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ConfigError("blip: max_new_tokens and batch_size must be >= 1.")
        self.model, self.prompt, self.max_new_tokens = model, prompt, max_new_tokens
        self.device: str | torch.device = device  # the resolved torch.device once loaded ("auto": CUDA if any)
        self.batch_size = batch_size
        self.revision = pinned_revision(model, BLIP_LARGE, revision)
        settings = [f"prompt={prompt!r}"] if prompt else []
        settings += [f"max_new_tokens={max_new_tokens}"] if max_new_tokens != 40 else []
        self.model_id = captioner_model_id(model, self.revision, settings)
        self._net: Any = None
        self._processor: Any = None

    def load(self) -> None:
        if self._net is not None:
            return
        from transformers import BlipForConditionalGeneration, BlipProcessor

        device = resolve_device(str(self.device))
        loaders: list[Callable[..., Any]] = [BlipProcessor.from_pretrained,
                                             BlipForConditionalGeneration.from_pretrained]
        on_missing = partial(model_not_available, "BLIP", self.model, hub_id=BLIP_LARGE)
        self._processor, net = load_hf("BLIP", self.model, loaders, on_missing, self.revision)
        self._net = net.to(device).eval()
        self.device = device

    def caption(self, images: list[Image.Image]) -> list[str]:
        import torch

        self.load()
        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [image.convert("RGB") for image in images[start:start + self.batch_size]]
            kwargs: dict[str, Any] = {"images": chunk, "return_tensors": "pt"}
            if self.prompt:
                kwargs["text"] = [self.prompt] * len(chunk)
            inputs = self._processor(**kwargs).to(self.device)
            with torch.inference_mode():
                ids = self._net.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=self.max_new_tokens)
            captions += [text.strip() for text in self._processor.batch_decode(ids, skip_special_tokens=True)]
        return captions
