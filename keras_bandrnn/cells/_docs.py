"""Docstring pieces shared by the cells (the Keras arguments they all take)."""

COMMON_ARGS = """        activation: Activation function to use. Default: hyperbolic tangent
            (`tanh`). If you pass `None`, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
        use_bias: Boolean, (default `True`), whether the layer should use a
            bias vector.
        kernel_initializer: Initializer for the `kernel` weights matrix, used
            for the linear transformation of the inputs.
        recurrent_initializer: Initializer for the recurrent weights.
        bias_initializer: Initializer for the bias vector. Default: `"zeros"`.
        kernel_regularizer: Regularizer function applied to the `kernel`
            weights matrix. Default: `None`.
        recurrent_regularizer: Regularizer function applied to the recurrent
            weights. Default: `None`.
        bias_regularizer: Regularizer function applied to the bias vector.
            Default: `None`.
        kernel_constraint: Constraint function applied to the `kernel` weights
            matrix. Default: `None`.
        recurrent_constraint: Constraint function applied to the recurrent
            weights. Default: `None`.
        bias_constraint: Constraint function applied to the bias vector.
            Default: `None`.
        dropout: Float between 0 and 1. Fraction of the units to drop for the
            linear transformation of the inputs (one mask per sequence).
            Default: 0.
        recurrent_dropout: Float between 0 and 1. Fraction of the units to drop
            for the linear transformation of the recurrent state (one mask per
            sequence). Default: 0.
        seed: Random seed for dropout."""

CALL_ARGS = """    Call arguments:
        sequence: A 2D tensor, with shape `(batch, features)`.
        states: A 2D tensor with shape `(batch, units)`, which is the state
            from the previous time step.
        training: Python boolean indicating whether the layer should behave in
            training mode or in inference mode. Only relevant when `dropout` or
            `recurrent_dropout` is used."""

BAND_ARGS = """        half_width: Non-negative integer, the number of diagonals on each side
            of the main diagonal (sets `lower` and `upper`).
        lower: Number of sub-diagonals (units `i - lower .. i` feed unit `i`),
            when `half_width` is not given.
        upper: Number of super-diagonals, when `half_width` is not given.
        shift: Optional positive integer `s`: shift initialization. The band
            starts as `A[i, i - s] = 1` (`keras_bandrnn.initializers.Shift`),
            a delay line moving the state `s` units per step, and the input
            kernel starts as the identity, writing `x_t` into the first units.
            Needs `s >= input_dim` and `s <= lower`.
        fixed_shift: Boolean. If `True`, the shift is a constant,
            non-trainable part of the recurrence, `A = S + D`, and the
            trainable band `D` starts at zero (the seed's "Closed Fixed"
            model). Needs `shift`.
        active_half_width: Optional non-negative integer. If given, only the
            diagonals with offset `-active_half_width .. active_half_width`
            act; the others are masked out of the forward pass and get no
            gradient. `keras_bandrnn.callbacks.BandWidthScheduler` widens it
            epoch by epoch. `None` (default): the whole band acts."""
