"""Keyframes of an exam while the streamer runs (``streamer run --keyframes DIR``): per region
the best k frames (select), kept in a bounded folder with atomic writes (store), each as the fan
crop and the crop with the region's map, box and peak drawn (overlay), and for a DICOM source
optionally as a Secondary Capture image in the source's study (dicom_sc). The sink that runs them
off the pipeline's thread is streamer/sinks/keyframes_sink.py; docs/exam-summary.md."""
