"""Request input checked against a model's signature, and handed to the model.

Most served models take numeric columns of one type (``float64`` features, say). For them a
request's 2-D array of the right width is checked and cast once, and stays an array: batches
are joined with ``numpy.concatenate`` and become a DataFrame (the model was fitted on named
columns) once per model call rather than once per request. Any other input goes through
:func:`shipyard.models.enforce_signature`, as ``LoadedModel.predict`` would do; both ways a
mismatch is an :class:`~shipyard.errors.InputMismatchError` naming the column or tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.entities import ModelSignature

__all__ = ["InputPlan"]

# which array kinds a column of each kind accepts (as enforce_signature); values must also fit
_ACCEPTS = {"f": "fiu", "i": "iu", "u": "u", "b": "b", "c": "cfiu"}


@dataclass(frozen=True)
class InputPlan:
    """How to check and prepare input for one model.

    Attributes:
        signature: the model's signature (None: input is passed as it comes).
        columns: the signature's column names in order (None for a tensor or no signature).
        types: the signature's column types in order (None as for ``columns``).
        dtype: the numpy dtype shared by every column, when all are numeric and alike: a 2-D
            array of that width is then accepted as it is.
    """

    signature: ModelSignature | None
    columns: tuple[str, ...] | None = None
    dtype: Any = None
    types: tuple[str, ...] | None = None

    @classmethod
    def of(cls, signature: ModelSignature | None) -> InputPlan:
        if signature is None or not signature.inputs or signature.is_tensor:
            return cls(signature)
        columns = tuple(spec.name for spec in signature.inputs)
        types = tuple(spec.type for spec in signature.inputs)
        dtype = None
        if len(set(types)) == 1 and types[0] in _NUMERIC:
            import numpy as np

            dtype = np.dtype(types[0])
        return cls(signature, columns, dtype, types)

    def accepts_array(self, data: Any) -> bool:
        """Whether ``data`` can stay a plain array (numeric, 2-D, signature width)."""
        import numpy as np

        return (
            self.dtype is not None
            and isinstance(data, np.ndarray)
            and data.ndim == 2
            and data.shape[1] == len(self.columns or ())
            and data.dtype.kind in _ACCEPTS[self.dtype.kind]
        )

    def check(self, data: Any) -> Any:
        """``data`` checked and converted to what the model takes.

        Returns a 2-D array in column order (fast path), or what ``enforce_signature`` returns.

        Raises:
            InputMismatchError: the input does not fit the signature (the field is named).
        """
        if self.accepts_array(data):
            return self._cast(data)
        if self.signature is None:
            return data
        from shipyard.models import enforce_signature

        return enforce_signature(data, self.signature)

    def _cast(self, data: Any) -> Any:
        """A 2-D array in the signature's dtype, refused when a value does not fit it (300 in an
        int8 column, 2**64-1 in an int64 one, 1e300 in a float32 one) rather than wrapped."""
        import numpy as np

        from shipyard.errors import InputMismatchError

        dtype = self.dtype
        if np.can_cast(data.dtype, dtype, "safe"):
            return data.astype(dtype, copy=False)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            bad = (data < info.min) | (data > info.max)
            cast = None
        else:  # float or complex: what overflows becomes inf
            with np.errstate(over="ignore"):
                cast = data.astype(dtype)
            bad = np.isinf(cast) & np.isfinite(data)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            name = (self.columns or ("input",))[column]
            value = data[row, column].item()
            raise InputMismatchError(
                name, f"column {name!r} expects {dtype} values; {value!r} is out of its range"
            )
        return cast if cast is not None else data.astype(dtype)

    def model_input(self, data: Any) -> Any:
        """What the model is called with for checked ``data`` (arrays get their column names)."""
        import numpy as np

        if self.columns is not None and isinstance(data, np.ndarray):
            import pandas as pd

            return pd.DataFrame(data, columns=_index(self.columns), copy=False)
        return data


_NUMERIC = {
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
}


@lru_cache(maxsize=64)
def _index(columns: tuple[str, ...]) -> pd.Index:
    """The column index of a model's input frames, built once (pandas builds it per frame)."""
    import pandas as pd

    return pd.Index(columns)
