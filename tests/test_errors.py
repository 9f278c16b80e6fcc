"""Input errors survive pickling, so errors in worker processes reach the CLI as one line."""

from __future__ import annotations

import pickle

from servesim.errors import InputError, UnknownNameError


def test_input_errors_pickle_with_their_message() -> None:
    for err in (
        InputError("rate", -1, "a rate > 0"),
        UnknownNameError("gpu", "a10", ["a100-80gb"]),
    ):
        back = pickle.loads(pickle.dumps(err))
        assert isinstance(back, InputError)
        assert str(back) == str(err)
        assert back.field == err.field
