"""The teacher–student setting of Brea et al. 2019, §5 (Fig. 3).

A teacher 784-H-H-10 is trained on image data with the negative
log-likelihood of a softmax output; its softmax is then replaced by the
identity, and the training inputs are relabelled with the teacher's ten
real-valued outputs y^μ = f(x^μ; θ*). A student with the same widths starts
at θ*, a global minimum (L = 0) of the normalised MSE `nmse`; the permutation
path then merges the pair of neurons of hidden layer 2 whose parameter
vectors ϑ = (W_{i,:}, b_i) have the highest cosine similarity.

The paper does not name its activation; we default to softplus, a smooth
choice for which the path's fixed-δ problems are differentiable (ReLU makes
them degenerate, see `symland.rescale_neurons`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from ._network import MLP, Params
from ._symmetry import check_hidden_layer, neuron_vectors

N_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A trained teacher network (Brea et al. 2019, §5).

    **Fields:** `model` (the `MLP`, linear output, i.e. softmax replaced by
    the identity), `params` (θ*), `accuracy` (training accuracy of
    argmax f(x; θ*)), `nll` (final training negative log-likelihood),
    `epochs`, `batch_size`, `learning_rate`, `seed`.
    """

    model: MLP
    params: Params
    accuracy: float
    nll: float
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int

    def to_dict(self) -> dict:
        return {"widths": list(self.model.widths), "activation": self.model.activation,
                "accuracy": self.accuracy, "nll": self.nll, "epochs": self.epochs,
                "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                "seed": self.seed}


def negative_log_likelihood(model: MLP, params: Params, x, labels):
    """(1/T) Σ_μ −log softmax(f(x^μ; θ))_{label^μ}, the teacher's training loss."""
    logits = model.apply(params, x)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))


def accuracy(model: MLP, params: Params, x, labels) -> float:
    """The fraction of samples whose largest output is the label."""
    predicted = np.argmax(np.asarray(model.apply(params, jnp.asarray(x, dtype=jnp.float64))), axis=1)
    return float(np.mean(predicted == np.asarray(labels)))


def check_labels(x, labels, n_classes: int = N_CLASSES):
    """`ValueError` unless x is (T, n_0) finite and labels are T integers in [0, n_classes)."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x: expected a non-empty (T, n_0) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x: contains NaN or inf")
    if labels.shape != (x.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected {x.shape[0]} integers, got shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels: must lie in 0…{n_classes - 1}")
    return x, labels.astype(np.int64)


def train_teacher(x, labels, hidden: int, *, activation: str = "softplus", seed: int = 0,
                  epochs: int = 30, batch_size: int = 128, learning_rate: float = 3e-3,
                  progress: bool = False) -> Teacher:
    """Train a teacher n_0-H-H-10 by mini-batch Adam (optax) on the negative log-likelihood.

    **Arguments:**
    - `x`, `labels`: training inputs (T, n_0) and integer labels 0…9.
    - `hidden`: H ≥ 2, the width of both hidden layers.
    - `activation`: the hidden activation (default softplus, see the module docstring).
    - `seed`: initialisation and shuffling; the same seed gives the same teacher.
    - `epochs`, `batch_size`, `learning_rate`: Adam's schedule.

    **Returns:** a `Teacher`.

    Example:
        >>> from symland import load_digits, train_teacher
        >>> x, labels = load_digits(300)
        >>> t = train_teacher(x, labels, 4, epochs=5)
        >>> t.model.widths, 0.0 <= t.accuracy <= 1.0
        ((64, 4, 4, 10), True)
    """
    import optax

    x, labels = check_labels(x, labels)
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 2:
        raise ValueError(f"hidden: H must be an integer ≥ 2 (a pair of neurons to merge), got {hidden!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: must be a positive integer, got {v!r}")
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate)
            and learning_rate > 0):
        raise ValueError(f"learning_rate: must be a finite positive number, got {learning_rate!r}")
    model = MLP((x.shape[1], int(hidden), int(hidden), N_CLASSES), activation=activation)
    k_init, k_shuffle = jax.random.split(jax.random.PRNGKey(seed))
    params = model.init(k_init)
    opt = optax.adam(learning_rate)
    T = x.shape[0]
    batch = min(int(batch_size), T)
    n_batches = T // batch
    xj, lj = jnp.asarray(x), jnp.asarray(labels)

    @jax.jit
    def epoch(params, opt_state, key):
        order = jax.random.permutation(key, T)[: n_batches * batch].reshape(n_batches, batch)

        def step(carry, idx):
            p, s = carry
            loss, g = jax.value_and_grad(negative_log_likelihood, argnums=1)(model, p, xj[idx], lj[idx])
            updates, s = opt.update(g, s, p)
            return (optax.apply_updates(p, updates), s), loss

        return jax.lax.scan(step, (params, opt_state), order)[0]

    state = opt.init(params)
    for key in tqdm(jax.random.split(k_shuffle, epochs), desc=f"teacher H={hidden}",
                    unit="epoch", disable=not progress, leave=False):
        params, state = epoch(params, state, key)
    nll = float(negative_log_likelihood(model, params, xj, lj))
    return Teacher(model, params, accuracy(model, params, xj, lj), nll, int(epochs), batch,
                   float(learning_rate), int(seed))


def relabel(model: MLP, params: Params, x):
    """The student's targets y^μ = f(x^μ; θ*): the teacher's outputs with softmax → identity."""
    return model.apply(params, jnp.asarray(x, dtype=jnp.float64))


def cosine_similarities(params: Params, layer: int) -> np.ndarray:
    """cos∠(ϑ_i, ϑ_j) for all neurons i, j of hidden layer `layer`; ϑ_i = (W_{i,:}, b_i)."""
    V = np.asarray(neuron_vectors(params, layer))
    norms = np.linalg.norm(V, axis=1)
    return (V @ V.T) / np.maximum(np.outer(norms, norms), 1e-300)


def most_similar_pair(params: Params, layer: int = 2) -> tuple[int, int, float]:
    """The pair (l, m), l < m, of hidden layer `layer` with the highest cosine similarity.

    Brea et al. 2019, Fig. 3 A: "we merged two parameter vectors with high
    cosine-similarity in the second hidden layer".

    **Returns:** `(l, m, cosine)`, 0-based.
    """
    n = check_hidden_layer(params, layer)
    if n < 2:
        raise ValueError(f"layer: hidden layer {layer} has {n} neuron; a pair needs two")
    C = cosine_similarities(params, layer)
    iu = np.triu_indices(n, 1)
    best = int(np.argmax(C[iu]))
    return int(iu[0][best]), int(iu[1][best]), float(C[iu][best])
