"""The bundled example: `offload.demo.app` (tasks) and `offload.demo.run` (`offload demo`)."""
