"""Gaussian-input theory of two-layer student–teacher networks (issue 5).

Closed-form population loss (`expected_loss`), isotropy subgroups of
Γ = S_k × S_k and their fixed-point subspaces, symmetric critical points and
their Hessian spectra (Safran & Shamir 2018; Arjevani & Field 2020–2022).
`__all__` lists the public surface.
"""

from symland.gaussian._kernel import (
    KERNEL_ACTIVATIONS,
    expected_loss,
    gaussian_kernel,
    gaussian_loss_function,
    kernel_matrix,
    loss_hessian,
    sample_loss,
)
from symland.gaussian._isotropy import (
    FixedPointSubspace,
    diagonal_isotropy_partition,
    fixed_point_subspace,
    isotropy_group,
    isotropy_partition,
    restricted_loss,
    restricted_loss_extended,
)
from symland.gaussian._families import (
    DECAY_CONSTANT,
    SAFRAN_SHAMIR_K7,
    DecayFit,
    SymmetricCriticalPoint,
    analyse_point,
    continue_family,
    critical_value_decay,
    full_space_derivatives,
    global_minimum_spectrum,
    safran_shamir_family,
    solve_on_subspace,
    symmetric_critical_points,
)
from symland.gaussian._families import SPURIOUS_FAMILIES, spurious_family
from symland.gaussian._dynamics import (
    FrequencyResult,
    SplitScan,
    align_rows_columns,
    empirical_frequency,
    family_split_report,
    TrainableOutputPoint,
    split_gaussian_neuron,
    split_scan,
    trainable_output_point,
)

# Inputs wider than the network, fractional k, perturbed targets.
from symland.gaussian._wide import (
    WideSpectrum,
    check_input_dimension,
    orthogonal_hessian_block,
    power_law_exponent,
    spectral_distance,
    wide_gradient,
    wide_hessian,
    wide_point,
    wide_spectrum,
    wide_teacher,
)
from symland.gaussian._fractional import (
    FRACTIONAL_FAMILIES,
    FractionalBranch,
    branch_point_check,
    follow_fractional_family,
    irrep_dimension,
    isotypic_blocks,
    isotypic_spectrum,
)
from symland.gaussian._perturbation import (
    PerturbedBranch,
    check_perturbation_size,
    follow_perturbed_minimum,
    perturbation_direction,
)

__all__ = [
    "KERNEL_ACTIVATIONS",
    "expected_loss",
    "gaussian_kernel",
    "gaussian_loss_function",
    "kernel_matrix",
    "loss_hessian",
    "sample_loss",
    "FixedPointSubspace",
    "diagonal_isotropy_partition",
    "fixed_point_subspace",
    "isotropy_group",
    "isotropy_partition",
    "restricted_loss",
    "restricted_loss_extended",
    "DECAY_CONSTANT",
    "SAFRAN_SHAMIR_K7",
    "DecayFit",
    "SymmetricCriticalPoint",
    "analyse_point",
    "continue_family",
    "critical_value_decay",
    "full_space_derivatives",
    "global_minimum_spectrum",
    "safran_shamir_family",
    "solve_on_subspace",
    "symmetric_critical_points",
    "SPURIOUS_FAMILIES",
    "spurious_family",
    "FrequencyResult",
    "SplitScan",
    "align_rows_columns",
    "empirical_frequency",
    "family_split_report",
    "TrainableOutputPoint",
    "split_gaussian_neuron",
    "split_scan",
    "trainable_output_point",
    "WideSpectrum",
    "check_input_dimension",
    "orthogonal_hessian_block",
    "power_law_exponent",
    "spectral_distance",
    "wide_gradient",
    "wide_hessian",
    "wide_point",
    "wide_spectrum",
    "wide_teacher",
    "FRACTIONAL_FAMILIES",
    "FractionalBranch",
    "branch_point_check",
    "follow_fractional_family",
    "irrep_dimension",
    "isotypic_blocks",
    "isotypic_spectrum",
    "PerturbedBranch",
    "check_perturbation_size",
    "follow_perturbed_minimum",
    "perturbation_direction",
]
