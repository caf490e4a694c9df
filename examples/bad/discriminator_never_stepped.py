"""A GAN trainer whose discriminator is backpropagated every batch and never updated."""

import torch
from torch import nn

generator = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32))
discriminator = nn.Sequential(nn.Linear(32, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
optimizer_G = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
adversarial = nn.BCEWithLogitsLoss()


def train(loader, epochs: int = 50) -> None:
    for _ in range(epochs):
        for real in loader:
            noise = torch.randn(real.size(0), 16)
            fake = generator(noise)
            optimizer_D.zero_grad()
            loss_D = adversarial(discriminator(real), torch.ones(real.size(0), 1)) + adversarial(
                discriminator(fake.detach()), torch.zeros(real.size(0), 1)
            )
            loss_D.backward()
            optimizer_G.zero_grad()
            loss_G = adversarial(discriminator(fake), torch.ones(real.size(0), 1))
            loss_G.backward()
            optimizer_G.step()
