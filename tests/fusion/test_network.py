from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError, GridMismatchError, ModelNotTrainedError, ProductReadError
from eominer.evaluation import bigearthnet
from eominer.fusion import cloud
from eominer.fusion.labels import Vocabulary
from eominer.fusion.network import TwoBranchNet, stack_patches


@pytest.fixture(scope="module")
def trained(ben):
    data = bigearthnet.load(ben)
    vocab = Vocabulary.present(data.labels)
    s2, s1 = stack_patches(data.patches)
    s2, s1 = s2[:, :, :60, :60], s1[:, :, :60, :60]  # 60 px crops: 4x faster to train
    net = TwoBranchNet(vocab, epochs=3, seed=0).fit(s2, s1, vocab.encode(data.labels))
    return net, s2, s1, vocab


def test_predicts_multilabel_scores(trained):
    net, s2, s1, vocab = trained
    P = net.predict_proba(s2[:5], s1[:5])
    assert P.shape == (5, len(vocab)) and ((P > 0) & (P < 1)).all()


def test_cloudy_optical_uses_the_s1_head(trained):
    net, s2, s1, _ = trained
    clouded = np.stack([cloud.cloud_over(x) for x in s2[:4]])
    ok = np.array([cloud.usable(cloud.valid_fraction(x)) for x in clouded])
    assert not ok.any()
    a = net.predict_proba(clouded, s1[:4], s2_usable=ok)
    b = net.predict_proba(np.zeros_like(clouded), s1[:4], s2_usable=ok)
    np.testing.assert_array_equal(a, b)  # whatever the cloud looks like, S1 decides
    _, s1_head = net.model_.predict({"s2": np.zeros((4, 60, 60, 12), np.float32),
                                     "s1": (np.transpose(s1[:4], (0, 2, 3, 1)) + 15) / 6,
                                     "s2_ok": np.zeros((4, 1), np.float32)}, verbose=0)
    np.testing.assert_allclose(a, s1_head, atol=1e-6)
    garbage = net.predict_proba(clouded, s1[:4])  # without the flag, cloud reaches the head
    assert not np.allclose(garbage, a)


def test_save_load_and_refusals(trained, tmp_path):
    net, s2, s1, vocab = trained
    path = net.save(tmp_path / "m")
    assert path.suffix == ".keras" and path.with_suffix(".json").exists()
    back = TwoBranchNet.load(path)
    np.testing.assert_allclose(back.predict_proba(s2[:3], s1[:3]),
                               net.predict_proba(s2[:3], s1[:3]), atol=1e-6)
    assert back.vocabulary == vocab
    other = Vocabulary(vocab.names[:-1] + ("Marine waters",))
    with pytest.raises(FeatureError, match="not trained with: \\['Marine waters'\\]"):
        back.predict_proba(s2[:1], s1[:1], vocabulary=other)
    with pytest.raises(GridMismatchError, match="trained on 60x60 px patches, got 30x30"):
        back.predict_proba(s2[:1, :, :30, :30], s1[:1, :, :30, :30])
    with pytest.raises(GridMismatchError, match="differ in patches or size"):
        back.predict_proba(s2[:2], s1[:1])
    with pytest.raises(ProductReadError, match="looks like linear power"):
        back.predict_proba(s2[:1], np.power(10, s1[:1] / 10))
    with pytest.raises(ModelNotTrainedError, match="eominer fusion train"):
        TwoBranchNet.load(tmp_path / "missing")
    with pytest.raises(ModelNotTrainedError, match="not trained"):
        TwoBranchNet(vocab).predict_proba(s2[:1], s1[:1])
    with pytest.raises(FeatureError, match="labels have shape"):
        TwoBranchNet(vocab, epochs=1).fit(s2[:2], s1[:2], np.zeros((2, 3)))
