"""Multi-layer perceptron backbone (CLArena's ``MLP`` arguments)."""

from __future__ import annotations

from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "elu": nn.ELU}


class MLP(nn.Module):
    """Fully connected backbone: flatten, then ``Linear -> [BatchNorm] -> activation -> [Dropout]``
    per hidden layer, and a final ``Linear`` to ``output_dim`` followed by the activation.

    Weights use PyTorch's default ``nn.Linear`` initialisation (Kaiming-uniform).

    Args:
        input_dim: number of input features after flattening (64 for 8x8 digits, 784 for MNIST).
        hidden_dims: sizes of the hidden layers, in order.
        output_dim: size of the shared representation the task heads read.
        activation: one of ``relu``, ``tanh``, ``gelu``, ``sigmoid``, ``elu``.
        batch_normalization: add ``BatchNorm1d`` after each linear layer.
        dropout: dropout probability after each activation (0 disables it).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: list[int],
        output_dim: int,
        activation: str = "relu",
        batch_normalization: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        for name, size in [("input_dim", input_dim), ("output_dim", output_dim),
                           *((f"hidden_dims[{i}]", d) for i, d in enumerate(hidden_dims))]:
            if size < 1:
                raise ValueError(f"{name} must be >= 1, got {size}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        layers: list[nn.Module] = [nn.Flatten()]
        dims = [self.input_dim, *[int(d) for d in hidden_dims], self.output_dim]
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            layers.append(nn.Linear(fan_in, fan_out))
            if batch_normalization:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)
