"""Visual force from camera sequences (seed 000: SSAM and the CNN-LSTM baseline) on the shared training core."""
