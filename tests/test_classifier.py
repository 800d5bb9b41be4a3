"""The TF-IDF weighting of nlu/classifier.py against scikit-learn's reference implementation."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import TfidfTransformer

from nlu.classifier import inverse_document_frequency, weigh


def counts() -> csr_matrix:
    rng = np.random.default_rng(7)
    dense = rng.poisson(0.4, size=(30, 25)).astype(float)
    dense[4] = 0  # a message with no known n-gram
    dense[:, 3] = 0  # an n-gram no training message has
    return csr_matrix(dense)


def test_weights_equal_scikit_learns_sublinear_tfidf() -> None:
    matrix = counts()
    reference = TfidfTransformer(sublinear_tf=True).fit(matrix)
    idf = inverse_document_frequency(matrix)
    assert np.allclose(idf, reference.idf_)
    assert np.allclose(weigh(matrix, idf, sublinear=True).toarray(), reference.transform(matrix).toarray())


def test_one_message_is_weighed_like_a_batch_and_the_counts_stay_untouched() -> None:
    matrix = counts()
    before = matrix.toarray().copy()
    idf = inverse_document_frequency(matrix)
    batch = weigh(matrix, idf, sublinear=False).toarray()
    single = weigh(matrix[7], idf, sublinear=False).toarray()
    assert np.allclose(single, batch[7:8])
    assert np.allclose(np.linalg.norm(batch[[r for r in range(30) if r != 4]], axis=1), 1.0)
    assert not batch[4].any()
    assert np.array_equal(matrix.toarray(), before)
