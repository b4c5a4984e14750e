"""Head configuration and the label set. Torch-free: the runtime reads it without PyTorch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# MELD's seven emotions, in the order of the logits.
EMOTIONS: tuple[str, ...] = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")

MODALITIES = ("both", "audio", "text")


@dataclass(frozen=True)
class HeadConfig:
    """Shape and ablation switches of the CM-RoBERTa head (DESIGN.md §2).

    audio_dim / text_dim: per-utterance feature sizes (paper: 6552 + 6144 = 12696 and 4096).
    hidden: h; BiLSTM outputs and every branch are 2h wide. sca_layers: N stacked SCA layers.
    modalities: "both", or an ablation "audio" / "text". use_sca=False removes the SCA unit
    (the classifier then reads the BiLSTM encoder outputs).
    """

    audio_dim: int = 12696
    text_dim: int = 4096
    hidden: int = 128
    sca_layers: int = 2
    num_heads: int = 4
    ffn_dim: int = 512
    classifier_dim: int = 256
    num_classes: int = len(EMOTIONS)
    dropout: float = 0.3
    modalities: str = "both"
    use_sca: bool = True

    def __post_init__(self) -> None:
        for name in ("audio_dim", "text_dim", "hidden", "sca_layers", "num_heads", "ffn_dim",
                     "classifier_dim", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"HeadConfig.{name} must be a positive int, got {value!r}")
        if (2 * self.hidden) % self.num_heads:
            raise ValueError(f"HeadConfig: 2*hidden={2 * self.hidden} must divide by num_heads={self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"HeadConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.modalities not in MODALITIES:
            raise ValueError(f"HeadConfig.modalities must be one of {MODALITIES}, got {self.modalities!r}")

    @property
    def uses_audio(self) -> bool:
        return self.modalities in ("both", "audio")

    @property
    def uses_text(self) -> bool:
        return self.modalities in ("both", "text")

    @property
    def width(self) -> int:
        """2h: the width of every branch output."""
        return 2 * self.hidden

    @property
    def num_branches(self) -> int:
        """How many 2h-wide vectors the classifier concatenates: per modality the SCA outputs
        (cross and self when bimodal, self when unimodal; the encoder output without SCA) and the
        residual branch, plus the mid-level fusion vector."""
        n_mod = 2 if self.modalities == "both" else 1
        sca_vectors = 2 if (self.use_sca and self.modalities == "both") else 1
        return n_mod * (sca_vectors + 1) + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "HeadConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"HeadConfig: unknown keys {sorted(unknown)}")
        return cls(**data)
