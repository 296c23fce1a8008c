from __future__ import annotations

from ignite.engine import Engine
from PIL import Image

from dhvae_monai.handlers import SamplePreviewSaver
from dhvae_monai.networks import DHVAE


def test_preview_every_interval_and_at_the_end(tmp_path):
    net = DHVAE(image_size=32, channels=(8, 16, 32, 32), norm_num_groups=8, leapfrog_steps=1)
    engine = Engine(lambda engine, batch: None)
    SamplePreviewSaver(network=net, output_dir=tmp_path, num_samples=6, interval=2, num_columns=3).attach(engine)
    engine.run([0], max_epochs=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview_epoch=2.png", "preview_epoch=3.png"]
    assert Image.open(tmp_path / "preview_epoch=3.png").size == (3 * 34, 2 * 34)
    assert net.training  # training mode restored after sampling
