"""symland: symmetry-induced geometry of neural-network loss landscapes.

Brea et al. 2019 (permutation saddles), Şimşek et al. 2021 (over-parameterised
minima), Arjevani & Field and Safran & Shamir (symmetric critical points).
Everything runs in float64 JAX.
"""

import jax

jax.config.update("jax_enable_x64", True)

from ._network import ACTIVATIONS, MLP, activation_function
from ._symmetry import (
    are_permutation_equivalent,
    canonical_order,
    canonical_permutation,
    neuron_distance,
    neuron_vector,
    neuron_vectors,
    permutation_between,
    permute_layer,
    swap_neurons,
)
from ._loss import loss_function, mse, nmse
from ._data import (
    ToyProblem,
    find_fashion_mnist,
    gaussian_teacher_data,
    load_digits,
    load_idx_dataset,
    read_idx,
    toy_problem,
)
from ._solver import SolverResult, minimise, refine_critical_point
from ._critical import (
    CriticalPointReport,
    classify_critical_point,
    count_signs,
    eigenvalue_multiplicities,
    hessian_matrix,
    hessian_spectrum,
    zero_tolerance,
)

__version__ = "0.1.0"
from ._path import PermutationPath, delta_schedule, find_permutation_path, find_permutation_paths
from . import counting
from .counting import (
    T,
    T_lower_bound,
    c_K,
    count_permutation_points,
    global_minima_subspaces,
    symmetry_induced_subspaces,
    crossover_h,
)
