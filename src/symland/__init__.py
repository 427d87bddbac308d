"""symland: symmetry-induced geometry of neural-network loss landscapes.

Brea et al. 2019 (permutation saddles), Şimşek et al. 2021 (over-parameterised
minima), Arjevani & Field and Safran & Shamir (symmetric critical points).
Everything runs in float64 JAX. The whole public surface is this file.
"""

import jax

jax.config.update("jax_enable_x64", True)

# Networks, symmetry, data and losses (Brea et al. 2019, eq. 1–2).
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
    rescale_neurons,
    swap_neurons,
)
from ._loss import loss_function, mse, nmse
from ._data import (
    ToyProblem,
    find_fashion_mnist,
    gaussian_teacher_data,
    load_digits,
    load_idx_dataset,
    load_image_data,
    read_idx,
    toy_problem,
)
from ._io import load_data, load_params, save_params
from ._teacher import (
    Teacher,
    accuracy,
    most_similar_pair,
    negative_log_likelihood,
    relabel,
    train_teacher,
)

# The result vocabulary: outcomes and critical-point verdicts.
from ._results import (
    RESULTS,
    CriticalPointReport,
    Kind,
    classify_spectrum,
    result_message,
    result_name,
    result_names,
    zero_tolerance,
)

# Solvers and critical-point analysis.
from ._solver import SolverResult, minimise, refine_critical_point
from ._critical import (
    classify_critical_point,
    eigenvalue_multiplicities,
    hessian_matrix,
    hessian_spectrum,
    hessian_vector_product,
)

# Permutation paths, points, plateaus and valleys (§4.1–4.3).
from ._path import PermutationPath, delta_schedule, find_permutation_path, find_permutation_paths
from ._plateau import (
    PlateauReport,
    check_permutation_point,
    identical_neuron_groups,
    is_permutation_point,
    plateau_directions,
    verify_plateau,
)
from ._valley import ValleyPath, equal_loss_permutation, silent_neuron_permutation
from ._embedding import check_assignment, embed_in_wider, equal_output_split

# Neuron splitting (Fukumizu & Amari 2000) and over-parameterised minima (Şimşek et al. 2021).
from ._splitting import (
    SplittingLine,
    classify_splitting_line,
    split_neuron,
    splitting_direction,
    splitting_matrix,
)
from ._overparameterised import (
    ZERO_TYPE,
    minimum_subspace_dimension,
    minimum_subspace_directions,
    overparameterised_minimum,
)

# Exact counts (Prop. 1, Lemma 1; Şimşek et al. 2021) and Gaussian-input theory.
from . import counting, gaussian
from .counting import (
    T,
    T_lower_bound,
    c_K,
    count_permutation_points,
    crossover_h,
    global_minima_subspaces,
    symmetry_induced_subspaces,
)

__version__ = "0.1.0"
