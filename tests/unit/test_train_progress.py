"""Training's live figures: a run that resumed mid-epoch counts the batches it skipped, so the
records it posts continue from where the stopped run was, never below."""

from __future__ import annotations

import json
from pathlib import Path

from workload.contract import PROGRESS_TOKEN_ENV, PROGRESS_URL_ENV
from workload.modes.train_progress import TrainProgress
from workload.progress import channel


def test_a_resumed_epoch_posts_its_records_from_the_checkpoint_on(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    sent: list[dict[str, object]] = []
    environ = {PROGRESS_URL_ENV: "https://operator/progress/ns/job", PROGRESS_TOKEN_ENV: str(token)}
    posted = channel("train", environ, send=lambda url, bearer, body: sent.append(json.loads(body)))
    with posted, TrainProgress(False) as display:
        callback = display.keras_callback(1000, 10, 2, skipped=lambda: 30)  # 300 records done
        callback.on_epoch_begin(1)
        callback.on_train_batch_end(0, {"loss": 0.5})
    assert sent[-1]["records"] == 1000 + 310  # epoch 0, then 31 batches of epoch 1
    assert sent[-1]["percent"] == 65.5
