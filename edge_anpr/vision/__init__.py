"""Vision: find plates in a frame (HoG + SVM) and read them (int8 TFLite models)."""
