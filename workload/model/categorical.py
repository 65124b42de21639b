"""Categorical fields inside the model: a vocabulary lookup, then one-hot or an embedding.

Each field's vocabulary comes from the training range (`TrainingProfile.vocabulary`:
its `data.maxTokens` most frequent values); a value outside it, at training
or serving time, maps to the one out-of-vocabulary index. Keras'
`StringLookup` does the lookup inside the model, so the exported model takes
the raw strings (LiteRT runs such a model without TensorFlow; ONNX export
does not convert the lookup's hash table).

By size: a vocabulary of at most `ONE_HOT_MAX` entries (the out-of-vocabulary
bucket included) is one-hot encoded; a larger one is embedded in
min(`EMBEDDING_MAX`, round(1.6 x size^0.56)) dimensions (fast.ai's rule of
thumb for tabular embeddings). In front of a user's own model the size is
that of `data.maxTokens` values whatever the vocabulary holds, so the width
the model takes is known from the spec alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras

ONE_HOT_MAX = 32
"""Largest vocabulary (with its out-of-vocabulary bucket) encoded one-hot."""

EMBEDDING_MAX = 32
"""Most dimensions of a categorical field's embedding."""


@dataclass(frozen=True)
class Encoding:
    """How one categorical field enters the network."""

    field: str
    """The field (as `data.categorical` names it)."""
    vocabulary: tuple[str, ...]
    """Kept values, most frequent first."""
    capacity: int | None = None
    """Lookup indices the encoding is sized for (`None`: the vocabulary's and the
    out-of-vocabulary bucket's; a user's model: `data.maxTokens + 1`, known before any data)."""

    @property
    def size(self) -> int:
        """Lookup indices the encoding covers: at least the vocabulary and the
        out-of-vocabulary bucket."""
        return max(self.capacity or 0, len(self.vocabulary) + 1)

    @property
    def one_hot(self) -> bool:
        """Whether the field is one-hot encoded (else embedded)."""
        return self.size <= ONE_HOT_MAX

    @property
    def width(self) -> int:
        """Numbers the field adds to the network's input."""
        return self.size if self.one_hot else min(EMBEDDING_MAX, round(1.6 * self.size ** 0.56))

    def describe(self) -> dict[str, Any]:
        """For the results: vocabulary size, encoding, width."""
        return {"vocabulary": len(self.vocabulary),
                "encoding": "one-hot" if self.one_hot else "embedding", "width": self.width}

    def apply(self, values: Any, name: str) -> Any:
        """The layers that turn the field's string tensor [batch] into [batch, width]."""
        indices = keras.layers.StringLookup(vocabulary=list(self.vocabulary),
                                            name=f"{name}_lookup")(values)
        if self.one_hot:
            return keras.layers.CategoryEncoding(self.size, output_mode="one_hot",
                                                 name=f"{name}_one_hot")(indices)
        return keras.layers.Embedding(self.size, self.width, name=f"{name}_embedding")(indices)
