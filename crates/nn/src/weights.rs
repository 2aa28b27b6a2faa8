//! Saving and loading a network's tensors as safetensors.

use crate::network::Network;
use crate::tensor::Tensor;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::BTreeMap;
use thiserror::Error;

/// Why weights could not be saved or loaded.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// The bytes are not a safetensors file.
    #[error("weights are not a valid safetensors file: {0}")]
    Format(#[from] safetensors::SafeTensorError),
    /// A tensor the network needs is not in the file.
    #[error("weights lack tensor {0:?}: they were saved from a different network")]
    Missing(String),
    /// The file holds a tensor the network does not have.
    #[error("weights hold tensor {0:?} that this network does not have")]
    Unexpected(String),
    /// A tensor has a different shape or type than the network's.
    #[error("tensor {name:?} is {found}, the network needs f32 {expected:?}")]
    Mismatch {
        /// Tensor name.
        name: String,
        /// The network's shape.
        expected: Vec<usize>,
        /// What the file holds.
        found: String,
    },
}

/// Serialises every parameter and state tensor of `network`.
pub fn save(network: &mut Network) -> Result<Vec<u8>, WeightsError> {
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    network.visit_params(&mut |name, param| {
        let bytes = param
            .value
            .data()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        tensors.insert(name.to_string(), (param.value.shape().to_vec(), bytes));
    });
    let views = tensors
        .iter()
        .map(|(name, (shape, bytes))| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// Loads tensors saved by [`save`] into `network`, refusing a file that
/// misses a tensor, has an extra one, or has one of another shape.
pub fn load(network: &mut Network, bytes: &[u8]) -> Result<(), WeightsError> {
    let file = SafeTensors::deserialize(bytes)?;
    let mut loaded = Vec::new();
    let mut first_error = None;
    network.visit_params(&mut |name, param| {
        if first_error.is_some() {
            return;
        }
        match read_tensor(&file, name, param.value.shape()) {
            Ok(tensor) => {
                param.value = tensor;
                loaded.push(name.to_string());
            }
            Err(e) => first_error = Some(e),
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    match file
        .names()
        .into_iter()
        .find(|n| !loaded.iter().any(|l| l == *n))
    {
        Some(extra) => Err(WeightsError::Unexpected(extra.to_string())),
        None => Ok(()),
    }
}

fn read_tensor(
    file: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Tensor, WeightsError> {
    let view = file
        .tensor(name)
        .map_err(|_| WeightsError::Missing(name.to_string()))?;
    if view.dtype() != Dtype::F32 || view.shape() != shape {
        return Err(WeightsError::Mismatch {
            name: name.to_string(),
            expected: shape.to_vec(),
            found: format!("{:?} {:?}", view.dtype(), view.shape()),
        });
    }
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_vec(shape, values).map_err(|e| WeightsError::Mismatch {
        name: name.to_string(),
        expected: shape.to_vec(),
        found: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Architecture;

    fn net(arch: Architecture, classes: usize, seed: u64) -> Network {
        match Network::new(arch, classes, 32, seed) {
            Ok(n) => n,
            Err(e) => panic!("{e}"),
        }
    }

    fn values(net: &mut Network) -> Vec<f32> {
        let mut all = Vec::new();
        net.visit_params(&mut |_, p| all.extend_from_slice(p.value.data()));
        all
    }

    #[test]
    fn weights_round_trip() -> Result<(), WeightsError> {
        let mut saved = net(Architecture::ResnetSmall, 3, 1);
        let bytes = save(&mut saved)?;
        let mut loaded = net(Architecture::ResnetSmall, 3, 2);
        assert_ne!(values(&mut saved), values(&mut loaded));
        load(&mut loaded, &bytes)?;
        assert_eq!(values(&mut saved), values(&mut loaded));
        Ok(())
    }

    #[test]
    fn other_network_is_refused() -> Result<(), WeightsError> {
        let bytes = save(&mut net(Architecture::ResnetSmall, 3, 1))?;
        let err = load(&mut net(Architecture::ResnetSmall, 2, 1), &bytes).err();
        assert!(
            matches!(err, Some(WeightsError::Mismatch { ref name, .. }) if name == "fc.weight"),
            "{err:?}"
        );
        let err = load(&mut net(Architecture::SeedCnn, 3, 1), &bytes).err();
        assert!(matches!(err, Some(WeightsError::Missing(_))), "{err:?}");
        Ok(())
    }

    #[test]
    fn corrupt_bytes_are_refused() -> Result<(), WeightsError> {
        let mut bytes = save(&mut net(Architecture::SeedCnn, 2, 1))?;
        bytes.truncate(bytes.len() / 2);
        let err = load(&mut net(Architecture::SeedCnn, 2, 1), &bytes).err();
        assert!(matches!(err, Some(WeightsError::Format(_))), "{err:?}");
        Ok(())
    }
}
