"""Inference tiles have the training patches' slice count along the slice axis."""
from iqt.inference import Predictor


def test_tiles_take_the_training_slice_count_and_are_butted():
    predictor = Predictor(predict_fn=None, factor=8, train_slices_lf=4)
    assert predictor.tiling((144, 144, 32), (8, 8, 2)) == ((144, 144, 4), (8, 8, 0))
    assert predictor.tiling((64, 64, 2), (8, 8, 2)) == ((64, 64, 4), (8, 8, 0))


def test_no_limit_without_a_training_slice_count():
    assert Predictor(predict_fn=None, factor=8).tiling((144, 144, 32), (8, 8, 2)) == ((144, 144, 32), (8, 8, 2))
