"""Jobs: what `medgan.main` runs (`config.job`). Each reads its config, calls the library, writes its result last.

prepare, train_classifier, train_gan, synthesize, audit, benchmark (one study point
end to end), reader_study (a page for radiologists); `common` holds the preamble they share.
"""
