"""symland: symmetry-induced geometry of neural-network loss landscapes.

Brea et al. 2019 (permutation saddles), Şimşek et al. 2021 (over-parameterised
minima), Arjevani & Field and Safran & Shamir (symmetric critical points).
Everything runs in float64 JAX (switched on here, once). The whole public surface
is this file: `__all__` lists it, and `symland.counting` and `symland.gaussian`
list theirs.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError, version as _version

import jax as _jax

_jax.config.update("jax_enable_x64", True)  # the one place x64 is switched on

# Networks, symmetry, data and losses (Brea et al. 2019, eq. 1–2).
from ._network import ACTIVATIONS, MLP, activation_function
from ._symmetry import (
    are_permutation_equivalent,
    canonical_order,
    canonical_permutation,
    from_neuron_log_scales,
    neuron_distance,
    neuron_log_scales,
    neuron_vector,
    neuron_vectors,
    permutation_between,
    permute_layer,
    rescale_neurons,
    swap_neurons,
)
from ._loss import loss_function, mse, nmse
from ._data import (
    InputProjection,
    ToyProblem,
    find_fashion_mnist,
    gaussian_teacher_data,
    input_null_dimension,
    load_digits,
    load_idx_dataset,
    load_image_data,
    project_inputs,
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
    SpectrumNotConverged,
)

# Permutation paths, points, plateaus and valleys (§4.1–4.3).
from ._path import (
    PermutationPath,
    balance_neurons,
    delta_schedule,
    find_permutation_path,
    find_permutation_paths,
    pair_distance,
)
from ._mep import MinimumEnergyPath, minimum_energy_path
from ._saddle import (
    PermutationSaddle,
    merged_configuration,
    permutation_saddle,
    permutation_saddles,
)
from ._channel import Channel, ChannelLimit, channel_limit, channel_of
from ._plateau import (
    EvenBlockSpectrum,
    PlateauReport,
    check_permutation_point,
    classify_permutation_point,
    even_block_spectrum,
    identical_neuron_groups,
    is_permutation_point,
    odd_block_spectrum,
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
from ._overparameterised import minimum_subspace_directions, overparameterised_minimum

# Exact counts (Prop. 1, Lemma 1; Şimşek et al. 2021) and Gaussian-input theory.
from . import counting, gaussian
from .counting import (
    ZERO_TYPE,
    T_lower_bound,
    c_K,
    count_permutation_points,
    crossover_h,
    global_minima_subspaces,
    subspace_dimension,
    symmetry_induced_subspaces,
)

# Isotropy subgroups, symmetric tensor decomposition, least symmetry breaking and deep connectivity.
from ._isotropy_subgroup import IsotropySubgroup, isotropy_subgroup
from ._tensor import TensorMinimaResult, explicit_tensor_loss, tensor_isotropy, tensor_loss, tensor_minima
from ._symmetry_breaking import SymmetryBreakingResult, least_symmetry_breaking
from ._deep_connectivity import (
    DeepConnectivity,
    add_zero_type_neurons,
    connect_permuted_minima,
    permuted_embedding,
)

try:
    __version__ = _version("symland")
except _PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "activation_function",
    "are_permutation_equivalent",
    "canonical_order",
    "canonical_permutation",
    "from_neuron_log_scales",
    "neuron_distance",
    "neuron_log_scales",
    "neuron_vector",
    "neuron_vectors",
    "permutation_between",
    "permute_layer",
    "rescale_neurons",
    "swap_neurons",
    "loss_function",
    "mse",
    "nmse",
    "InputProjection",
    "ToyProblem",
    "find_fashion_mnist",
    "load_image_data",
    "project_inputs",
    "Teacher",
    "accuracy",
    "most_similar_pair",
    "negative_log_likelihood",
    "relabel",
    "train_teacher",
    "gaussian_teacher_data",
    "input_null_dimension",
    "load_digits",
    "load_idx_dataset",
    "read_idx",
    "toy_problem",
    "load_data",
    "load_params",
    "save_params",
    "RESULTS",
    "CriticalPointReport",
    "Kind",
    "classify_spectrum",
    "result_message",
    "result_name",
    "result_names",
    "zero_tolerance",
    "SolverResult",
    "minimise",
    "refine_critical_point",
    "classify_critical_point",
    "eigenvalue_multiplicities",
    "hessian_matrix",
    "hessian_spectrum",
    "hessian_vector_product",
    "SpectrumNotConverged",
    "PermutationPath",
    "balance_neurons",
    "delta_schedule",
    "find_permutation_path",
    "find_permutation_paths",
    "pair_distance",
    "MinimumEnergyPath",
    "minimum_energy_path",
    "PermutationSaddle",
    "merged_configuration",
    "permutation_saddle",
    "permutation_saddles",
    "Channel",
    "ChannelLimit",
    "channel_limit",
    "channel_of",
    "IsotropySubgroup",
    "isotropy_subgroup",
    "TensorMinimaResult",
    "explicit_tensor_loss",
    "tensor_isotropy",
    "tensor_loss",
    "tensor_minima",
    "SymmetryBreakingResult",
    "least_symmetry_breaking",
    "DeepConnectivity",
    "add_zero_type_neurons",
    "connect_permuted_minima",
    "permuted_embedding",
    "EvenBlockSpectrum",
    "PlateauReport",
    "check_permutation_point",
    "classify_permutation_point",
    "even_block_spectrum",
    "identical_neuron_groups",
    "is_permutation_point",
    "odd_block_spectrum",
    "plateau_directions",
    "verify_plateau",
    "ValleyPath",
    "equal_loss_permutation",
    "silent_neuron_permutation",
    "check_assignment",
    "embed_in_wider",
    "equal_output_split",
    "SplittingLine",
    "classify_splitting_line",
    "split_neuron",
    "splitting_direction",
    "splitting_matrix",
    "minimum_subspace_directions",
    "overparameterised_minimum",
    "counting",
    "gaussian",
    "ZERO_TYPE",
    "T_lower_bound",
    "c_K",
    "count_permutation_points",
    "crossover_h",
    "global_minima_subspaces",
    "subspace_dimension",
    "symmetry_induced_subspaces",
]
